from scalarize.store.database import DATABASE_NAME, Store, StoreError

__all__ = ["DATABASE_NAME", "Store", "StoreError"]
