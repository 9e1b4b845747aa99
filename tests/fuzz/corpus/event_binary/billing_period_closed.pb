
acme:close:00001acme2025-12-05T06:00:00Z"financeª	
2025-11