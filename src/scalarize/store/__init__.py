from scalarize.store.database import DATABASE_NAME, Store

__all__ = ["DATABASE_NAME", "Store"]
