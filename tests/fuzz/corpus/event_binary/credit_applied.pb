
acme:cred:00001acme2025-12-20T15:00:00Zš 
2025-121Promotional credit