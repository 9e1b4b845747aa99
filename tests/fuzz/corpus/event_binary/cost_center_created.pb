
acme:cc:00001acme2025-11-01T00:00:14Z"admin-consoleZ
cc-engEngineering