"""The strict local cloud: AWS's request checks that moto skips."""
