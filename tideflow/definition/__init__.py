"""Defining workflows: reading, checking and building manifests, before any engine runs them.

``loading`` parses YAML/JSON into the models, ``validation`` checks a whole
workflow (schema, graph, templates, functions, parameters), ``templating`` and
``functions`` are the sandboxed Jinja and the ``module:name`` resolver that the
engine also uses at run time, ``dag`` is the task graph, and ``builder`` is the
fluent Python front door to the same models.
"""
