"""Rewards: pure, named, picklable functions over trajectories and their composition.

Every environment reports named per-turn terms in ``info["reward_components"]``; the functions
here score outcomes and turns (outcome match, citation-aware rubrics, bipartite-matched tool
credit, information gain) and combine them (weights, gating), independent of any one environment.
"""
