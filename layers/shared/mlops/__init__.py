"""Shared package of the serverless MLOps pipeline (ships as the Lambda layer).

Keep this file free of imports: the feature code in ``mlops.ml`` is also packaged into the
model artifact and the Glue job, where Powertools and boto3 may be absent.
"""
