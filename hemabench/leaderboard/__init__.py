"""The static leaderboard site: collect results, rank them with a paired bootstrap, render HTML.

``build_site`` is imported lazily: validation reuses ``collect`` without loading matplotlib.
"""

__all__ = ["BuildReport", "build_site"]


def __getattr__(name: str):
    if name in __all__:
        from hemabench.leaderboard import build

        return getattr(build, name)
    raise AttributeError(name)
