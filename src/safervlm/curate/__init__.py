"""QI-Safe curation: the training pool (pool.py), decontamination (decontaminate.py,
near_dup.py), QI scoring (scoring.py) and selection (qi.py), the datasheet (datasheet.py).

Import the submodule you need: this package file imports nothing, so building the pool never
loads the scorer (and the reward and judge it uses), and editing the reward reruns only
``qi_score`` and what follows.
"""
