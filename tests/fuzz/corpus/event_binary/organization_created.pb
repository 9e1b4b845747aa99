
acme:org:00001acme2025-11-01T00:00:07Z"admin-consoleR
	Acme CorpUSD	ACME-0001