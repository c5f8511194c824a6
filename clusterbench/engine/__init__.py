from clusterbench.engine.loop import fit

__all__ = ["fit"]
