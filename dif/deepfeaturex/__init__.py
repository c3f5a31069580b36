"""DeepFeatureX Net (Pontorno, Guarnera, Battiato; arXiv 2404.15697), made runnable.

One base model per class (a torchvision backbone fine-tuned on a deliberately unbalanced set:
every image of its class plus 4% of every other architecture folder), then a complete model: the
frozen base models' pooled features stacked as (B, classes, D) and fused by a Conv1d head.
``python -m dif.deepfeaturex {guidance,train-base,train-complete,test}`` mirrors the authors' four
scripts; a complete-model folder is the registered method ``deepfeaturex`` of ``eval_dif.py``.

Modules: ``models`` (backbones, fusion head, complete model), ``data`` (layout, guidance CSV,
splits, unbalanced sets, resized images), ``train`` (loops, test metrics), ``method`` (the
registered method).
"""
