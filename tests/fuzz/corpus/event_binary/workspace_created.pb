
acme:ws:00001acme2025-11-01T00:00:28Z"admin-consoleb#
ws-eng-1cc-engeng workspace 1