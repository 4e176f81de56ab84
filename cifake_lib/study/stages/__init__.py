"""What each notebook does, as functions: a notebook cell calls one and displays the result.

One module per notebook: ``exploration`` (01), ``preprocessing`` (02), ``training`` (03, 04),
``evaluation`` (05), ``explainability`` (06), ``robustness`` (07). A notebook imports its own
module as ``stage``.
"""
