"""moto's server with seven of its costs taken out, for the sandbox and `cargo xtask bench compliance`.

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
  path is joined only when the answer has transformers; once the names are known, the value is looked up
  under them without building moto's per-attribute context. Answers compared field by field before and after
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
- **Every request opens a connection**: werkzeug closes each one after its answer (it cannot tell what
  is left of a request's body), so each request cost a TCP connection and a thread in moto. Here the body
  is read whole before moto sees it and the connection stays open for the next request (with TCP_NODELAY,
  so the answer's two writes are not held back).

Usage: python moto_server.py [moto_server arguments]
"""

import copy
import functools
import io
import selectors
import sys
import threading
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


def _cache_key(picker, obj, key, shape):
    """The cache's key for `key` of `obj` under `shape`, and the identities the entry must hold."""
    parent = getattr(shape, "parent", None) if shape is not None else None
    providers = picker.alias_providers
    return (type(picker), id(providers), type(obj), key, id(shape), id(parent)), (providers, shape, parent)


def _cached_keys(picker, obj, key, shape):
    """The names to try for `key` of `obj`, if worked out before; None otherwise."""
    cache_key, held = _cache_key(picker, obj, key, shape)
    hit = _possible_keys_cache.get(cache_key)
    if hit is not None and all(h is w for h, w in zip(hit[:3], held)):
        return hit[3]
    return None


def _possible_keys(picker, context):
    keys = _cached_keys(picker, context.obj, context.key, context.shape)
    if keys is not None:
        return keys
    # moto's alias providers read only the class (its name, its `Meta`), the attribute and the shape.
    keys = tuple(dict.fromkeys(picker.get_possible_keys(context)))
    if len(_possible_keys_cache) > 200_000:  # a bound, should shapes ever be rebuilt per request
        _possible_keys_cache.clear()
    cache_key, held = _cache_key(picker, context.obj, context.key, context.shape)
    _possible_keys_cache[cache_key] = (*held, keys)
    return keys


def _first_value(obj, keys):
    """The value of the first of `keys` that `obj` has, as `AttributePicker` looks it up; None if none."""
    for possible_key in keys:
        value = _get_value(obj, possible_key, _MISSING)
        if value is not _MISSING:
            return value
    return None


def _pick_attribute(self, context):
    """`AttributePicker.__call__`, with the possible names from the cache."""
    value = _first_value(context.obj, _possible_keys(self, context))
    if self.response_transformers:
        key_path = f"{context.key_path}.{context.key}"
        for transform_path, transform in self.response_transformers.items():
            if key_path.endswith(transform_path):
                value = transform(value)
                break
    return value


def _serializer_get_value(self, value, key, shape):
    """`ResponseSerializer.get_value`. For a picker above without transformers whose names for the
    attribute are known, the value is looked up under them directly, without the context object moto
    builds for every attribute; otherwise as moto does, the key path joined only for pickers that
    transform values."""
    picker = self._value_picker
    transformers = getattr(picker, "response_transformers", True)
    if not transformers and type(picker).__call__ is _pick_attribute:
        keys = _cached_keys(picker, value, key, shape)
        if keys is not None:
            return _first_value(value, keys)
    key_path = ".".join(self.path) if transformers else ""
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


# --- Connections kept open between requests ---------------------------------------------------------

# werkzeug's server answers every request with `Connection: close`, because after the application it
# cannot tell how much of the request's body is left unread before the next request line; it then
# drains the socket, waiting up to 10 ms for more bytes. Every request thus paid a TCP connection and a
# new thread in moto, and the SDKs a connection each. Here the body is read whole before the application
# runs (moto reads it whole anyway), so nothing of the request is left on the socket and the connection
# can carry the next one: the close header is left out and there is nothing to drain. Small writes go out
# at once (TCP_NODELAY): a response is two writes, headers then body, which Nagle's algorithm would hold
# back for the client's delayed acknowledgement once connections persist. A request whose length cannot
# be read is answered as before, on a connection that closes.

_make_environ = werkzeug.serving.WSGIRequestHandler.make_environ


def _make_environ_body_read(self):
    environ = _make_environ(self)
    self._body_read = False
    if environ.get("wsgi.input_terminated"):  # chunked: werkzeug's reader knows where it ends
        body = environ["wsgi.input"].read()
    else:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return environ
        if length < 0:
            return environ
        body = self.rfile.read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    self._body_read = True
    return environ


_send_header = werkzeug.serving.WSGIRequestHandler.send_header


def _send_header_keep_alive(self, keyword, value):
    if getattr(self, "_body_read", False) and keyword.lower() == "connection" and value.lower() == "close":
        return
    _send_header(self, keyword, value)


class _DrainOnlyUnreadBodies:
    """Stands in for werkzeug's drain selector: after a request whose body was read whole, the socket
    holds only the client's next request, which must not be read away."""

    def __init__(self):
        self._selector = selectors.DefaultSelector()
        self._handler = getattr(_handling, "handler", None)

    def register(self, *args):
        return self._selector.register(*args)

    def select(self, timeout=None):
        if getattr(self._handler, "_body_read", False):
            return []
        return self._selector.select(timeout)

    def close(self):
        self._selector.close()


_handling = threading.local()
_run_wsgi = werkzeug.serving.WSGIRequestHandler.run_wsgi


def _run_wsgi_tracked(self):
    _handling.handler = self
    try:
        return _run_wsgi(self)
    finally:
        _handling.handler = None


werkzeug.serving.WSGIRequestHandler.make_environ = _make_environ_body_read
werkzeug.serving.WSGIRequestHandler.send_header = _send_header_keep_alive
werkzeug.serving.WSGIRequestHandler.run_wsgi = _run_wsgi_tracked
werkzeug.serving.WSGIRequestHandler.disable_nagle_algorithm = True
werkzeug.serving.selectors = types.SimpleNamespace(DefaultSelector=_DrainOnlyUnreadBodies, EVENT_READ=selectors.EVENT_READ)


from moto.server import main  # noqa: E402  (after the patches, which it reads at call time)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
