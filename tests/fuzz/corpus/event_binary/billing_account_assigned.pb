
acme:acct:00001acme2025-11-01T00:00:56Z"admin-consolez
cc-engACME-0001-01