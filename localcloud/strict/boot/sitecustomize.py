"""Started in an executor's subprocess (Glue script, training or serving code) with this
folder on PYTHONPATH: checks the process's AWS calls as the managed service's role."""

from localcloud.strict.enforce import install_from_environment

install_from_environment()
