
acme:sup:00001acme2026-01-02T10:00:00Z"support-desk’&
2025-12185.355Enterprise support