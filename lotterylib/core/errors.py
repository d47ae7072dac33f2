"""The error every check of a parameter raises (`stages.config` for the registry's parameters, `core.rules`
for `compat`): its message names the parameter, the value and the fix."""


class ParameterError(ValueError):
    """An invalid parameter value or name; the message names the parameter, the value and the fix."""
