"""moto's server with three of its costs taken out, for the sandbox and `cargo xtask bench compliance`.

Each replacement keeps what moto answers; only the work behind the answer changes. Profiles of moto
under the test suite (py-spy over a crash-matrix run) and of the compliance bench (cProfile over 600
requests) found:

- **Every request lists moto's package directory** to decide whether the host names one of its services
  (`moto.backends.list_of_moto_modules`: a `listdir` and a `stat` per module, a third of a
  `DescribeTaskDefinition`'s time). The list cannot change while the server runs, so it is read once.
- **Every `TransactWriteItems` deep-copies each table it writes to**, whole, once per item of the
  transaction, as the backup it restores when the transaction is cancelled. suma's lock and journal are one
  table that every environment of the suite writes to, so each lock renewal and journal write cost time in
  proportion to everything the suite had journaled so far: a third of moto's time in a crash-matrix run,
  and renewals that waited up to 17 s late in the suite. Here the backup is the items the transaction
  names (a deep copy of each, or "absent"), restored the same way when it is cancelled.
- **Every KMS key gets an RSA-2048 private key generated at creation**, symmetric keys included, which
  never use it (~50 ms of CPU a key; the seeding of each test environment creates seven keys). Here the
  private key is generated the first time something uses it.

Usage: python moto_server.py [moto_server arguments]
"""

import copy
import sys
import types

import moto.backends
import moto.dynamodb.models as dynamodb_models
import moto.kms.models as kms_models

_MODULES = tuple(moto.backends.list_of_moto_modules())
moto.backends.list_of_moto_modules = lambda: _MODULES


# --- TransactWriteItems: back up the items a transaction names, not their tables --------------------

# moto's `transact_write_items` backs a table up with `copy.deepcopy(table)` (the only whole-table copy in
# the module) and, when the transaction is cancelled, puts the copy back and raises. With tables passed
# through uncopied, "putting the copy back" leaves the table as it is, and the wrapper below restores the
# named items before the error reaches the client.
def _deepcopy_all_but_tables(value, memo=None):
    if isinstance(value, dynamodb_models.Table):
        return value
    return copy.deepcopy(value, memo)


dynamodb_models.copy = types.SimpleNamespace(deepcopy=_deepcopy_all_but_tables)

_transact_write_items = dynamodb_models.DynamoDBBackend.transact_write_items


def _item_backups(backend, transact_items):
    """`(table, hash key, range key, deep copy or None)` of each item the transaction names."""
    backups = []
    for entry in transact_items:
        for op_type, op in entry.items():
            table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            if table is None:
                continue
            try:
                keys = op["Item"] if op_type == "Put" else op["Key"]
                hash_key, range_key = backend.get_keys_value(table, keys)
                current = table.get_item(hash_key, range_key)
            except Exception:  # noqa: BLE001  (a malformed item: moto rejects it before writing anything)
                continue
            backups.append((table, hash_key, range_key, copy.deepcopy(current)))
    return backups


def _restore(backups):
    # In reverse: when a transaction names an item twice, the first backup is the item as it was.
    for table, hash_key, range_key, item in reversed(backups):
        if item is None:
            try:
                if range_key is not None:
                    table.items[hash_key].pop(range_key, None)
                else:
                    table.items.pop(hash_key, None)
            except KeyError:
                pass
        elif range_key is not None:
            table.items[hash_key][range_key] = item
        else:
            table.items[hash_key] = item


def transact_write_items(self, transact_items):
    backups = _item_backups(self, transact_items)
    try:
        return _transact_write_items(self, transact_items)
    except BaseException:
        _restore(backups)
        raise


dynamodb_models.DynamoDBBackend.transact_write_items = transact_write_items


# --- KMS: a key's private key generated when first used ----------------------------------------------

_generate_private_key = kms_models.generate_private_key


class _PrivateKeyOnFirstUse:
    """Stands in for the private key moto generates for every KMS key; generates it on first use."""

    def __init__(self, key_spec):
        self._key_spec = key_spec
        self._key = None

    def __getattr__(self, name):
        # Only the key's own attributes: a copy or pickle looks its protocol up before `__init__` ran.
        if name.startswith("_"):
            raise AttributeError(name)
        if self._key is None:
            self._key = _generate_private_key(self._key_spec)
        return getattr(self._key, name)


kms_models.generate_private_key = _PrivateKeyOnFirstUse


from moto.server import main  # noqa: E402  (after the patches, which it reads at call time)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
