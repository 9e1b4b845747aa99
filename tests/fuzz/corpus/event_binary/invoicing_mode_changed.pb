
acme:mode:00001acme2026-01-12T09:00:00Z"admin-console‚
PER_COST_CENTER