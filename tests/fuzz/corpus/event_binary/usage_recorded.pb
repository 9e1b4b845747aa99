
acme:use:00011acme2025-11-03T00:32:43Z"aws-curŠª
aws-prod-01	AWSLambdaRequest"3arn:aws:lambda:us-east-1:849456393508:function:ml-0*	eu-west-12300:RequestsB34.294151296J2025-11-03T00:32:43ZR2025-11-03T00:32:43Z