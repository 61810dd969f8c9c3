"""moto's server with six of its costs taken out, for the sandbox and `cargo xtask bench compliance`.

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
- **Every attribute of every answer searches for its value under each of its possible names**: moto's
  response serializer asks six alias providers, for each attribute of each object it serializes, which
  names the attribute may have on the Python object (the model's name, its snake_case form, the name less
  the class's prefix, ...), and joins the object's path for response transformers that most answers do
  not have: half of a `DescribeTaskDefinition`'s serialization (cProfile). The names depend only on the
  object's class, the attribute and the model's shape, so they are worked out once per combination; the
  path is joined only when the answer has transformers. Answers compared field by field before and after
  on twenty of the calls suma makes (ECS, RDS, Secrets Manager, Route 53, KMS, EC2, ELBv2, ElastiCache):
  identical. The compliance check of 1,000 resources: 3.7 s before, 3.0 s after (warm runs, alternated,
  while a build shared the machine).
- **Every request lists the methods of its service's response class** (`inspect.getmembers` over a class
  of hundreds of members, to see whether the action is one of them): 2.7% of moto's busy time. The list
  of a class is the same for the life of the server, so it is made once per class.
- **Every request's log line goes through Python's `logging`** (a record, a formatter, a handler's lock,
  ANSI colours for anything but a 200) from werkzeug's request handler: 7.6% of moto's busy time under
  the compliance bench (py-spy). Here the handler writes the same line (`ADDRESS - - [DATE] "REQUEST
  LINE" STATUS SIZE`, uncoloured) to stderr itself, in one write.

Usage: python moto_server.py [moto_server arguments]
"""

import copy
import functools
import sys
import types

import werkzeug.serving

import moto.backends
import moto.core.responses as responses
import moto.core.serialize as serialize
import moto.dynamodb.models as dynamodb_models
import moto.kms.models as kms_models

_MODULES = tuple(moto.backends.list_of_moto_modules())
moto.backends.list_of_moto_modules = lambda: _MODULES


# A response class's method names, listed once per class.
responses.method_names_from_class = functools.cache(responses.method_names_from_class)


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


# --- The serializer: an attribute's possible names worked out once --------------------------------------

_MISSING = serialize.MISSING
_get_value = serialize.get_value
# (picker class, its alias providers, object class, attribute, shape, shape's parent) -> the names to try.
# The providers and shapes are keyed by identity and kept in the entry, so an id is never reused while its
# entry lives.
_possible_keys_cache = {}


def _possible_keys(picker, context):
    shape = context.shape
    parent = getattr(shape, "parent", None) if shape is not None else None
    providers = picker.alias_providers
    cache_key = (type(picker), id(providers), type(context.obj), context.key, id(shape), id(parent))
    hit = _possible_keys_cache.get(cache_key)
    if hit is not None and hit[0] is providers and hit[1] is shape and hit[2] is parent:
        return hit[3]
    # moto's alias providers read only the class (its name, its `Meta`), the attribute and the shape.
    keys = tuple(dict.fromkeys(picker.get_possible_keys(context)))
    if len(_possible_keys_cache) > 200_000:  # a bound, should shapes ever be rebuilt per request
        _possible_keys_cache.clear()
    _possible_keys_cache[cache_key] = (providers, shape, parent, keys)
    return keys


def _pick_attribute(self, context):
    """`AttributePicker.__call__`, with the possible names from the cache."""
    obj = context.obj
    for possible_key in _possible_keys(self, context):
        value = _get_value(obj, possible_key, _MISSING)
        if value is not _MISSING:
            break
    else:
        value = None
    if self.response_transformers:
        key_path = f"{context.key_path}.{context.key}"
        for transform_path, transform in self.response_transformers.items():
            if key_path.endswith(transform_path):
                value = transform(value)
                break
    return value


def _serializer_get_value(self, value, key, shape):
    """`ResponseSerializer.get_value`, joining the key path only for pickers that transform values."""
    picker = self._value_picker
    key_path = ".".join(self.path) if getattr(picker, "response_transformers", True) else ""
    context = serialize.AttributePickerContext(
        obj=value, key=key, shape=shape, operation_model=self.operation_model,
        service_model=self.operation_model.service_model, key_path=key_path,
    )
    return picker(context)


serialize.AttributePicker.__call__ = _pick_attribute
serialize.ResponseSerializer.get_value = _serializer_get_value


# --- The request log: one write a request -----------------------------------------------------------


def _log_request(self, code="-", size="-"):
    """`WSGIRequestHandler.log_request`'s line, written directly rather than through `logging`."""
    # Control characters (from a decoded path) are escaped as werkzeug does.
    request = self.requestline.translate(self._control_char_table)
    sys.stderr.write(f'{self.address_string()} - - [{self.log_date_time_string()}] "{request}" {code} {size}\n')


werkzeug.serving.WSGIRequestHandler.log_request = _log_request


from moto.server import main  # noqa: E402  (after the patches, which it reads at call time)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
