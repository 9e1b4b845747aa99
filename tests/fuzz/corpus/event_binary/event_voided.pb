
acme:void:00001acme2026-01-03T10:00:00Z"admin-console¢
acme:sup:00003charged twice