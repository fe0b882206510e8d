"""Deciding the target: declared types, casting rules, the type plan and the planner
that reads the source to decide it, identifier mapping and the foreign-key load order.
"""
