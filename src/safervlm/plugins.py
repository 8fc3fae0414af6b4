"""Built-in plugins that are imported by name when used, never all at once.

A judge is chosen by the config: the judge stage imports only the chosen judge's module, so
a job (and its rule's tracked code) holds exactly that judge. The Snakefile reads this table
at parse time to name the module in the rule's ``code`` param; it imports nothing else.
"""

from __future__ import annotations

# name -> "module:attribute"
JUDGES: dict[str, str] = {
    "reference": "safervlm.judge.reference:ReferenceJudge",
    "openai": "safervlm.judge.http:OpenAIJudge",
    "hf": "safervlm.judge.hf:HFJudge",
}


def module_file(target: str) -> str:
    """``safervlm.a.b:Attr`` -> ``a/b.py`` (relative to the package)."""
    return target.split(":")[0].removeprefix("safervlm.").replace(".", "/") + ".py"
