"""Software-engineering tasks in sandboxes: rlvr/SWE-v0.

Layers: :mod:`~rlvr.envs.swe.sandbox` (Docker / bubblewrap sandboxes), :mod:`~rlvr.envs.swe.pool`
(warm pool), :mod:`~rlvr.envs.swe.images` (offline image layering).
"""
