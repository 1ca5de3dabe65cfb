"""The production web app: HTML form, JSON prediction API, model info and health.

Everything the web function does lives here so its handler stays a one-line call.
Imports nothing heavy (no pandas): the web function ships only boto3, Powertools and this layer.
"""
