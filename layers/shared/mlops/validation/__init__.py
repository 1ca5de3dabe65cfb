"""Validation of raw objects against their dataset contract.

Submodules import pandas/awswrangler (AWS's managed AWSSDKPandas layer on Lambda), so this
package file stays empty: importing ``mlops.validation`` must not pull them into other functions.
"""
