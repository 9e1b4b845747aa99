
acme:prv:00001acme2025-11-01T00:00:42Z"admin-consolej(
aws-prod-01ws-eng-1
AWS prod 1"aws