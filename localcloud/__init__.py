"""The local cloud (moto in-process, template.yaml provisioned and routed) and the mlops CLI."""
