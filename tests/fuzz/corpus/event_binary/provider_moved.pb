
acme:mov:00001acme2025-12-15T12:00:00Zr
aws-prod-01	ws-data-1