"""Flint's managed runtime for Python (python3.8 ... python3.14), shipped inside the flint binary.

Speaks the Lambda Runtime API 2018-06-01 at $AWS_LAMBDA_RUNTIME_API over one keep-alive
connection, loads the handler named by $_HANDLER from $LAMBDA_TASK_ROOT once, then calls it for
each invocation. Context, logging and error payloads follow AWS's own Python runtime (awslambdaric)
so that functions and their callers see what they would see on Lambda. Standard library only.

Started by bootstrap.py beside it. Every import here is paid by every cold start, so this module
imports only what the first invocation needs (json, the C socket module); what only errors and
log records need (traceback, logging) is imported when first used -- see _LoggingSetup.
"""

import json
import os
import sys
import time
from _socket import AF_INET, AF_INET6, IPPROTO_TCP, SOCK_STREAM, TCP_NODELAY
from _socket import getaddrinfo as _getaddrinfo
from _socket import socket as _socket

ERROR_LOG_LINE_TERMINATE = "\r"
ERROR_LOG_IDENT = "\u00a0"  # NO-BREAK SPACE, as Lambda indents stack lines in text logs
_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
_RUNTIME_PATH = "/2018-06-01/runtime"
_MAX_XRAY_HEADER = 1024 * 1024

LAMBDA_UNHANDLED_EXCEPTION_WARNING = (
    "LAMBDA_WARNING: "
    "Unhandled exception. "
    "The most likely cause is an issue in the function code. "
    "However, in rare cases, a Lambda runtime update can cause unexpected function behavior. "
    "For functions using managed runtimes, runtime updates can be triggered by a function change, "
    "or can be applied automatically. "
    "To determine if the runtime has been updated, check the runtime version in the INIT_START "
    "log entry. "
    "If this error correlates with a change in the runtime version, you may be able to mitigate "
    "this error by temporarily rolling back to the previous runtime version. "
    "For more information, see https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html"
)

# The request id of the invocation in progress, read by the log filter ("" during init).
_GLOBAL_AWS_REQUEST_ID = None
_GLOBAL_TENANT_ID = None


class FaultException(Exception):
    """An error the runtime itself reports, with Lambda's `Runtime.*` error types."""

    MARSHAL_ERROR = "Runtime.MarshalError"
    UNMARSHAL_ERROR = "Runtime.UnmarshalError"
    USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
    IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
    BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
    MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
    LAMBDA_CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

    def __init__(self, exception_type, msg, trace=None):
        Exception.__init__(self, msg)
        self.msg = msg
        self.exception_type = exception_type
        self.trace = trace


# ---------------------------------------------------------------------------------------------
# Runtime API client: a minimal HTTP/1.1 client over one persistent socket. http.client is not
# used on purpose: importing it (email, ssl) costs ~10 ms of every cold start, and the Runtime
# API needs only Content-Length or chunked bodies on a local connection. Neither is the `socket`
# module (enum, selectors: ~2 ms): the C `_socket` does the I/O and a BufferedReader over the
# socket's descriptor reads the responses (as Python's own stdio reads a socket given as stdin).
# ---------------------------------------------------------------------------------------------


class _StaleConnection(Exception):
    """The kept-alive connection was closed before any byte of a response arrived."""


class RuntimeClient(object):
    def __init__(self, address):
        host, sep, port = address.rpartition(":")
        if not sep:
            host, port = address, "80"
        self._address = (host.strip("[]") or "127.0.0.1", int(port))
        self._host = address.encode("ascii", "replace")
        self._sock = None
        self._rfile = None

    def _connect(self):
        host, port = self._address
        try:
            # A str host makes getaddrinfo import the idna codec (~1.5 ms); ASCII needs none.
            host = host.encode("ascii")
        except UnicodeEncodeError:
            pass
        error = None
        for family, kind, proto, _name, sockaddr in _getaddrinfo(host, port, 0, SOCK_STREAM):
            sock = _socket(family, kind, proto)
            try:
                # Blocking whatever socket.setdefaulttimeout() the function's code set: /next
                # waits as long as the function stays idle.
                sock.settimeout(None)
                sock.connect(sockaddr)
            except OSError as e:
                sock.close()
                error = e
                continue
            if family in (AF_INET, AF_INET6):
                sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
            self._sock = sock
            self._rfile = open(sock.fileno(), "rb", buffering=65536, closefd=False)
            return
        raise error if error is not None else OSError("getaddrinfo returned no address")

    def _close(self):
        for closable in (self._rfile, self._sock):
            if closable is not None:
                try:
                    closable.close()
                except OSError:
                    pass
        self._sock = None
        self._rfile = None

    def request(self, method, path, body=None, headers=()):
        """Sends one request and returns (status, headers with lower-case names, body bytes)."""
        head = [b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, path, self._host)]
        for name, value in headers:
            head.append(b"%s: %s\r\n" % (name, value))
        if body is not None:
            head.append(b"Content-Length: %d\r\n" % len(body))
        head.append(b"\r\n")
        data = b"".join(head)
        small = body is not None and len(body) <= 65536
        if small:
            data += body
        for attempt in (1, 2):
            if self._sock is None:
                self._connect()
            try:
                self._sock.sendall(data)
                if body is not None and not small:
                    self._sock.sendall(body)
                return self._read_response()
            except (_StaleConnection, BrokenPipeError, ConnectionResetError):
                # The server dropped the idle connection: reconnect once and resend.
                self._close()
                if attempt == 2:
                    raise ConnectionError("Runtime API closed the connection")
        raise ConnectionError("unreachable")

    def _read_response(self):
        rfile = self._rfile
        line = rfile.readline(65537)
        if not line:
            raise _StaleConnection()
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            self._close()
            raise ConnectionError("malformed response from Runtime API: %r" % line[:100])
        status = int(parts[1])
        headers = {}
        while True:
            line = rfile.readline(65537)
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                self._close()
                raise ConnectionError("Runtime API closed the connection mid-response")
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode(
                "utf-8", "replace"
            )
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        elif "content-length" in headers:
            length = int(headers["content-length"])
            body = rfile.read(length) if length else b""
            if len(body) != length:
                self._close()
                raise ConnectionError("Runtime API closed the connection mid-body")
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            body = rfile.read()
            self._close()
            return status, headers, body
        if headers.get("connection", "").lower() == "close":
            self._close()
        return status, headers, body

    def _read_chunked(self):
        rfile = self._rfile
        chunks = []
        while True:
            size_line = rfile.readline(65537)
            if not size_line:
                self._close()
                raise ConnectionError("Runtime API closed the connection mid-body")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(rfile.read(size))
            rfile.readline(65537)

    def wait_next_invocation(self):
        status, headers, body = self.request(b"GET", _RUNTIME_PATH.encode() + b"/invocation/next")
        if status != 200:
            raise ConnectionError(
                "Request to Lambda Runtime 'next' endpoint failed. Reason: '%d'. Response body: '%s'"
                % (status, body[:1000].decode("utf-8", "replace"))
            )
        return headers, body

    def post_invocation_result(self, invoke_id, result, content_type):
        self.request(
            b"POST",
            b"%s/invocation/%s/response" % (_RUNTIME_PATH.encode(), _path_segment(invoke_id)),
            result,
            ((b"Content-Type", content_type.encode()),),
        )

    def post_invocation_error(self, invoke_id, error_json, error_type, xray_json):
        headers = [
            (b"Content-Type", b"application/json"),
            (b"Lambda-Runtime-Function-Error-Type", _header_value(error_type)),
        ]
        if xray_json and len(xray_json) < _MAX_XRAY_HEADER:
            headers.append((b"Lambda-Runtime-Function-XRay-Error-Cause", _header_value(xray_json)))
        self.request(
            b"POST",
            b"%s/invocation/%s/error" % (_RUNTIME_PATH.encode(), _path_segment(invoke_id)),
            error_json.encode("utf-8"),
            headers,
        )

    def post_init_error(self, error_json, error_type):
        self.request(
            b"POST",
            _RUNTIME_PATH.encode() + b"/init/error",
            error_json.encode("utf-8"),
            (
                (b"Content-Type", b"application/json"),
                (b"Lambda-Runtime-Function-Error-Type", _header_value(error_type)),
            ),
        )


_PATH_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _path_segment(value):
    raw = value.encode("utf-8")
    if all(b in _PATH_SAFE for b in raw):
        return raw
    return b"".join(bytes([b]) if b in _PATH_SAFE else b"%%%02X" % b for b in raw)


def _header_value(value):
    # Header values may not carry line breaks; anything else goes through as UTF-8.
    return value.replace("\r", " ").replace("\n", " ").encode("utf-8")


# ---------------------------------------------------------------------------------------------
# JSON, as awslambdaric marshals it.
# ---------------------------------------------------------------------------------------------


def _json_default(obj):
    decimal = sys.modules.get("decimal")
    if decimal is not None and isinstance(obj, decimal.Decimal):
        # awslambdaric (simplejson) writes Decimals as numbers; the stdlib encoder cannot emit
        # raw number text, so integral values become ints and the rest floats.
        if obj.is_nan():
            return float("nan")
        if obj == obj.to_integral_value():
            return int(obj)
        return float(obj)
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


# awslambdaric keeps non-ASCII characters unescaped only on python3.12.
_ENCODER = json.JSONEncoder(
    ensure_ascii=os.environ.get("AWS_EXECUTION_ENV") != "AWS_Lambda_python3.12",
    default=_json_default,
)
_ERROR_ENCODER = json.JSONEncoder(default=_json_default)


def to_json(obj):
    return _ERROR_ENCODER.encode(obj)


def _unmarshal_request(body, content_type):
    # A missing Content-Type is taken as JSON: Flint's Runtime API always sends one.
    if content_type is not None and content_type != "application/json":
        return body
    try:
        return json.loads(body)
    except Exception as e:
        raise FaultException(
            FaultException.UNMARSHAL_ERROR,
            "Unable to unmarshal input: {}".format(str(e)),
            None,
        )


def _marshal_response(response):
    if isinstance(response, bytes):
        return response, "application/unknown"
    try:
        return _ENCODER.encode(response).encode("utf-8"), "application/json"
    except Exception as e:
        raise FaultException(
            FaultException.MARSHAL_ERROR,
            "Unable to marshal response: {}".format(str(e)),
            None,
        )


# ---------------------------------------------------------------------------------------------
# The context object handed to the handler.
# ---------------------------------------------------------------------------------------------


class LambdaContext(object):
    def __init__(
        self,
        invoke_id,
        client_context,
        cognito_identity,
        epoch_deadline_time_in_ms,
        invoked_function_arn=None,
        tenant_id=None,
    ):
        environ = os.environ
        self.aws_request_id = invoke_id
        self.log_group_name = environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = environ.get("AWS_LAMBDA_FUNCTION_NAME")
        # A string, as on Lambda (recorded: "memory_limit_in_mb": "128").
        self.memory_limit_in_mb = environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id

        self.client_context = _make_obj_from_dict(ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = _make_obj_from_dict(Client, self.client_context.client)

        self.identity = _make_obj_from_dict(CognitoIdentity, {})
        if cognito_identity is not None:
            self.identity.cognito_identity_id = cognito_identity.get("cognitoIdentityId")
            self.identity.cognito_identity_pool_id = cognito_identity.get("cognitoIdentityPoolId")

        self._epoch_deadline_time_in_ms = epoch_deadline_time_in_ms

    def get_remaining_time_in_millis(self):
        epoch_now_in_ms = int(time.time() * 1000)
        delta_ms = self._epoch_deadline_time_in_ms - epoch_now_in_ms
        return delta_ms if delta_ms > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            "%s([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,function_name=%s,"
            "memory_limit_in_mb=%s,function_version=%s,invoked_function_arn=%s,"
            "client_context=%s,identity=%s,tenant_id=%s])"
            % (
                self.__class__.__name__,
                self.aws_request_id,
                self.log_group_name,
                self.log_stream_name,
                self.function_name,
                self.memory_limit_in_mb,
                self.function_version,
                self.invoked_function_arn,
                self.client_context,
                self.identity,
                self.tenant_id,
            )
        )


class CognitoIdentity(object):
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __repr__(self):
        return "%s([cognito_identity_id=%s,cognito_identity_pool_id=%s])" % (
            self.__class__.__name__,
            self.cognito_identity_id,
            self.cognito_identity_pool_id,
        )


class Client(object):
    __slots__ = [
        "installation_id",
        "app_title",
        "app_version_name",
        "app_version_code",
        "app_package_name",
    ]

    def __repr__(self):
        return (
            "%s([installation_id=%s,app_title=%s,app_version_name=%s,app_version_code=%s,"
            "app_package_name=%s])"
            % (
                self.__class__.__name__,
                self.installation_id,
                self.app_title,
                self.app_version_name,
                self.app_version_code,
                self.app_package_name,
            )
        )


class ClientContext(object):
    __slots__ = ["custom", "env", "client"]

    def __repr__(self):
        return "%s([custom=%s,env=%s,client=%s])" % (
            self.__class__.__name__,
            self.custom,
            self.env,
            self.client,
        )


def _make_obj_from_dict(cls, values):
    if values is None:
        return None
    obj = cls()
    get = values.get if isinstance(values, dict) else (lambda _k, _d=None: None)
    for field in cls.__slots__:
        setattr(obj, field, get(field, None))
    return obj


def _parse_json_header(header, name):
    try:
        return json.loads(header)
    except Exception as e:
        raise FaultException(
            FaultException.LAMBDA_CONTEXT_UNMARSHAL_ERROR,
            "Unable to parse {} JSON: {}".format(name, str(e)),
            None,
        )


def _create_lambda_context(invoke_id, headers):
    client_context_json = headers.get("lambda-runtime-client-context")
    cognito_identity_json = headers.get("lambda-runtime-cognito-identity")
    client_context = None
    if client_context_json:
        client_context = _parse_json_header(client_context_json, "Client Context")
    cognito_identity = None
    if cognito_identity_json:
        cognito_identity = _parse_json_header(cognito_identity_json, "Cognito Identity")
    try:
        deadline = int(headers.get("lambda-runtime-deadline-ms", "0"))
    except ValueError:
        deadline = 0
    return LambdaContext(
        invoke_id,
        client_context,
        cognito_identity,
        deadline,
        headers.get("lambda-runtime-invoked-function-arn"),
        headers.get("lambda-runtime-aws-tenant-id"),
    )


# ---------------------------------------------------------------------------------------------
# Errors, in awslambdaric's payload shapes.
# ---------------------------------------------------------------------------------------------


# python3.8's runtime (an older awslambdaric) puts no requestId in its error payloads.
_ERRORS_CARRY_REQUEST_ID = os.environ.get("AWS_EXECUTION_ENV") != "AWS_Lambda_python3.8"


def make_error(error_message, error_type, stack_trace, invoke_id=None):
    error = {
        "errorMessage": error_message if error_message else "",
        "errorType": error_type if error_type else "",
        "requestId": invoke_id if invoke_id is not None else "",
        "stackTrace": stack_trace if stack_trace else [],
    }
    if not _ERRORS_CARRY_REQUEST_ID:
        del error["requestId"]
    return error


# This module's file: cut from the top of stack traces with bootstrap.py, as awslambdaric cuts
# frames of its own bootstrap.py.
_THIS_FILE = "/flint_runtime_bootstrap.py"


def _extract_traceback(tb):
    import traceback  # errors only: not paid by cold starts

    # 4-tuples, as awslambdaric formats them: no column carets in the stack trace.
    frames = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(tb)]
    for i in range(len(frames)):
        if "/bootstrap.py" not in frames[i][0] and not frames[i][0].endswith(_THIS_FILE):
            return frames[i:]
    return frames


def _format_frames(frames):
    import traceback

    return traceback.format_list(frames)


def _build_fault_result(exc_info, msg=None):
    etype, value, tb = exc_info
    frames = _extract_traceback(tb)
    return make_error(msg if msg else str(value), etype.__name__, _format_frames(frames))


def _make_xray_fault(ex_type, ex_msg, working_dir, frames):
    stack = []
    files = set()
    for tb_file, tb_line, tb_method, _code in frames:
        stack.append({"label": tb_method, "path": tb_file, "line": tb_line})
        files.add(tb_file)
    return {
        "working_directory": working_dir,
        "exceptions": [{"message": ex_msg, "type": ex_type, "stack": stack}],
        "paths": list(files),
    }


def _replace_line_indentation(line, indent_char, new_indent_char):
    count = len(line) - len(line.lstrip(indent_char))
    return (new_indent_char * count) + line[count:]


def _log_error_text(error_result):
    description = "[ERROR]"
    error_type = error_result.get("errorType")
    if error_type:
        description += " " + error_type
    message = error_result.get("errorMessage")
    if message:
        if error_type:
            description += ":"
        description += " " + message
    lines = [description]
    stack_trace = error_result.get("stackTrace")
    if stack_trace is not None:
        lines.append("Traceback (most recent call last):")
        for element in stack_trace:
            if element == "":
                lines.append("")
            else:
                for trace_line in element.splitlines():
                    lines.append(_replace_line_indentation(trace_line, " ", ERROR_LOG_IDENT))
    sys.stdout.write(ERROR_LOG_LINE_TERMINATE.join(lines) + "\n")


def _log_error_json(error_result):
    record = {
        "timestamp": time.strftime(_DATETIME_FORMAT, time.gmtime(time.time())),
        "level": "ERROR",
    }
    record.update(error_result)
    sys.stdout.write(to_json(record) + "\n")


# ---------------------------------------------------------------------------------------------
# Logging: print() goes to stdout unbuffered; the root logger gets Lambda's format.
# ---------------------------------------------------------------------------------------------


class Unbuffered(object):
    def __init__(self, stream):
        self.stream = stream

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        pass

    def __getattr__(self, attr):
        return getattr(self.stream, attr)

    def write(self, msg):
        self.stream.write(msg)
        self.stream.flush()

    def writelines(self, msgs):
        self.stream.writelines(msgs)
        self.stream.flush()


_RESERVED_FIELDS = frozenset(
    [
        "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module",
        "exc_info", "exc_text", "stack_info", "lineno", "funcName", "created", "msecs",
        "relativeCreated", "thread", "threadName", "processName", "process", "taskName",
        "aws_request_id", "tenant_id", "_frame_type",
    ]
)


def _logging_classes(logging):
    """Lambda's handler, filter and JSON formatter, built on the `logging` module once loaded."""

    class LambdaLoggerHandler(logging.Handler):
        def emit(self, record):
            sys.stdout.write(self.format(record))

    class LambdaLoggerFilter(logging.Filter):
        def filter(self, record):
            record.aws_request_id = _GLOBAL_AWS_REQUEST_ID or ""
            record.tenant_id = _GLOBAL_TENANT_ID
            return True

    class JsonFormatter(logging.Formatter):
        """AWS_LAMBDA_LOG_FORMAT=JSON: one JSON object per record, as Lambda's Python runtime."""

        _encode = json.JSONEncoder(ensure_ascii=False, default=str).encode

        def formatTime(self, record, datefmt=None):
            seconds = int(record.created)
            millis = int((record.created - seconds) * 1000)
            return "%s.%03dZ" % (time.strftime(_DATETIME_FORMAT, time.gmtime(seconds)), millis)

        def format(self, record):
            record.levelno = min(50, max(0, record.levelno)) // 10 * 10
            record.levelname = logging.getLevelName(record.levelno)
            exc_info = record.exc_info
            if exc_info:
                import traceback
            result = {
                "timestamp": self.formatTime(record),
                "level": record.levelname,
                "message": record.getMessage(),
                "logger": record.name,
                "stackTrace": traceback.format_tb(exc_info[2]) if exc_info else None,
                "errorType": exc_info[0].__name__ if exc_info else None,
                "errorMessage": str(exc_info[1]) if exc_info else None,
                "requestId": getattr(record, "aws_request_id", None),
                "location": "%s:%s:%s" % (record.pathname, record.funcName, record.lineno)
                if exc_info
                else None,
            }
            if getattr(record, "tenant_id", None) is not None:
                result["tenantId"] = record.tenant_id
            for key, value in record.__dict__.items():
                if key not in _RESERVED_FIELDS and key not in result:
                    result[key] = value
            return self._encode({k: v for k, v in result.items() if v is not None}) + "\n"

    return LambdaLoggerHandler, LambdaLoggerFilter, JsonFormatter


def _setup_logging(logging, log_format_json):
    """Gives the root logger Lambda's handler, format and AWS_LAMBDA_LOG_LEVEL."""
    handler_class, filter_class, json_formatter_class = _logging_classes(logging)
    logging.Formatter.converter = time.gmtime
    logger = logging.getLogger()
    handler = handler_class()
    if log_format_json:
        handler.setFormatter(json_formatter_class())
    else:
        handler.setFormatter(
            logging.Formatter(
                "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
                _DATETIME_FORMAT,
            )
        )
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL")
    level = {None: "", "TRACE": "DEBUG"}.get(level, level).upper()
    if level in logging._nameToLevel:
        logger.setLevel(level)
    handler.addFilter(filter_class())
    logger.addHandler(handler)


class _LoggingSetup(object):
    """Configures `logging` the moment it is first imported, instead of importing it at start.

    awslambdaric imports and configures logging before it loads the function. Importing logging
    (with threading, traceback, string, weakref...) costs ~3 ms of every cold start, yet many
    functions never log through it; so this finder, first on sys.meta_path, hands out the
    standard library's logging with a loader that runs Lambda's configuration right after the
    module body, inside that first import: whoever imports logging -- the function's code, a
    library, the runtime itself on an init error -- gets it already configured, as on Lambda,
    and the finder then leaves sys.meta_path. The spec is looked up on sys.path as it was at
    start (before /var/task and /opt/python were put in front), so a function's own
    `logging.py` does not replace the standard one, as it does not on Lambda.
    """

    def __init__(self, log_format_json):
        self._json = log_format_json
        self._path = list(sys.path)
        self._done = False

    def install(self):
        if "logging" in sys.modules:
            self._configure(sys.modules["logging"])  # imported by sitecustomize or a .pth
            return
        try:
            from _frozen_importlib_external import PathFinder
        except ImportError:
            import logging

            self._configure(logging)
            return
        self._path_finder = PathFinder
        sys.meta_path.insert(0, self)

    def ensure(self):
        """After init: a finder placed before this one may have loaded logging unconfigured."""
        module = sys.modules.get("logging")
        if module is not None and not self._done:
            self._configure(module)

    def _configure(self, module):
        self._uninstall()
        if not self._done:
            self._done = True
            _setup_logging(module, self._json)

    def _uninstall(self):
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass

    def find_spec(self, name, path=None, target=None):
        if name != "logging" or self._done:
            return None
        self._uninstall()
        spec = self._path_finder.find_spec(name, self._path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _ConfiguringLoader(spec.loader, self)
        return spec


class _ConfiguringLoader(object):
    """The standard loader of `logging`, then Lambda's configuration (see _LoggingSetup)."""

    def __init__(self, loader, setup):
        self._loader = loader
        self._setup = setup

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        # The module gets its real loader back before its body runs: nothing sees this wrapper.
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        self._setup._configure(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


# ---------------------------------------------------------------------------------------------
# Loading the handler and running invocations.
# ---------------------------------------------------------------------------------------------


def _get_handler(handler):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise FaultException(
            FaultException.MALFORMED_HANDLER_NAME,
            "Bad handler '{}': {}".format(handler, str(e)),
        )

    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise FaultException(
                FaultException.BUILT_IN_MODULE_CONFLICT,
                "Cannot use built-in module {} as a handler module".format(modname),
            )
        name = modname.replace("/", ".")
        if name.startswith("."):
            import importlib  # only to raise what import_module raises for a relative name

            module = importlib.import_module(name)
        else:
            # importlib.import_module's absolute import, without importing importlib (~1 ms).
            __import__(name)
            module = sys.modules[name]
    except ImportError as e:
        raise FaultException(
            FaultException.IMPORT_MODULE_ERROR,
            "Unable to import module '{}': {}".format(modname, str(e)),
        )
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise FaultException(
            FaultException.USER_CODE_SYNTAX_ERROR,
            "Syntax error in module '{}': {}".format(modname, str(e)),
            trace,
        )

    try:
        return getattr(module, fname)
    except AttributeError:
        raise FaultException(
            FaultException.HANDLER_NOT_FOUND,
            "Handler '{}' missing on module '{}'".format(fname, modname),
            None,
        )


def _handle_event_request(client, request_handler, invoke_id, body, headers, log_error):
    error_result = None
    try:
        context = _create_lambda_context(invoke_id, headers)
        event = _unmarshal_request(body, headers.get("content-type"))
        response = request_handler(event, context)
        result, content_type = _marshal_response(response)
    except FaultException as e:
        xray_fault = _make_xray_fault("LambdaValidationError", e.msg, os.getcwd(), [])
        error_result = make_error(e.msg, e.exception_type, e.trace, invoke_id)
    except Exception:
        etype, value, tb = sys.exc_info()
        frames = _extract_traceback(tb)
        xray_fault = _make_xray_fault(etype.__name__, str(value), os.getcwd(), frames)
        error_result = make_error(str(value), etype.__name__, _format_frames(frames), invoke_id)
        del tb

    if error_result is not None:
        log_error(error_result)
        client.post_invocation_error(
            invoke_id, to_json(error_result), error_result["errorType"], to_json(xray_fault)
        )
    else:
        client.post_invocation_result(invoke_id, result, content_type)


def _setup_sys_path(task_root):
    """Lambda's search order: the function's code, then the layers' python dirs, then the rest."""
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == here:
        del sys.path[0]  # the bootstrap's own directory is not on Lambda's path
    execution_env = os.environ.get("AWS_EXECUTION_ENV", "")
    versions = []
    if execution_env.startswith("AWS_Lambda_python"):
        versions.append(execution_env[len("AWS_Lambda_python"):])
    actual = "%d.%d" % sys.version_info[:2]
    if actual not in versions:
        versions.append(actual)  # a nearer interpreter stands in: its layer dir works too
    front = [task_root]
    front.extend("/opt/python/lib/python%s/site-packages" % v for v in versions)
    front.append("/opt/python")
    # The runtime's own packages (boto3, from `flint runtimes install`) come after the function's
    # code and layers, as /var/lang/lib/pythonX.Y/site-packages does on AWS.
    front.extend(
        p for p in ("/var/lang/lib/python%s/site-packages" % v for v in versions[:1])
        if os.path.isdir(p)
    )
    sys.path[:0] = [p for p in front if p not in sys.path]


def _await_function():
    """In a pre-initialised sandbox, Flint started this interpreter before the function was known
    (crates/sandbox/src/preinit.rs): wait for the function's environment and working directory and
    take them as a fresh start has them. Nothing is imported for it, nothing of it is left."""
    fd = os.environ.get("_FLINT_PREINIT_FD")
    if fd is None or "_FLINT_PREINIT_PAD" not in os.environ or not fd.isdigit():
        return
    fd = int(fd)
    # What the interpreter itself added at its start (LC_CTYPE by locale coercion) is added by a
    # fresh start too, from the same start-up variables: keep it, after the function's.
    with open("/proc/self/environ", "rb") as f:
        at_exec = {entry.split(b"=", 1)[0] for entry in f.read().split(b"\0")}
    added = [(k, v) for k, v in os.environ.items() if os.fsencode(k) not in at_exec]
    try:
        os.write(fd, b"r")
    except OSError:
        return  # a function's own variables of these names, in a fresh start

    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    start = json.loads(b"".join(chunks))
    os.environ.clear()
    for name, value in start["env"]:
        os.environ[name] = value
    for name, value in added:
        if name not in os.environ:
            os.environ[name] = value
    os.chdir(start["cwd"])


def main():
    global _GLOBAL_AWS_REQUEST_ID, _GLOBAL_TENANT_ID
    _await_function()
    sys.stdout = Unbuffered(sys.stdout)
    sys.stderr = Unbuffered(sys.stderr)

    log_format_json = os.environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"
    log_error = _log_error_json if log_format_json else _log_error_text
    logging_setup = _LoggingSetup(log_format_json)  # takes sys.path as it is at start
    logging_setup.install()

    task_root = os.environ.get("LAMBDA_TASK_ROOT") or "/var/task"
    _setup_sys_path(task_root)
    try:
        os.chdir(task_root)
    except OSError:
        pass

    client = RuntimeClient(os.environ["AWS_LAMBDA_RUNTIME_API"])

    try:
        request_handler = _get_handler(os.environ.get("_HANDLER", ""))
    except Exception as e:
        if isinstance(e, FaultException):
            error_result = make_error(e.msg, e.exception_type, e.trace)
        else:
            error_result = _build_fault_result(sys.exc_info())
        import logging  # configured by logging_setup as it loads

        logging_setup.ensure()
        logging.warning(LAMBDA_UNHANDLED_EXCEPTION_WARNING)
        log_error(error_result)
        client.post_init_error(to_json(error_result), error_result["errorType"])
        sys.exit(1)

    logging_setup.ensure()
    environ = os.environ
    while True:
        headers, body = client.wait_next_invocation()
        invoke_id = headers.get("lambda-runtime-aws-request-id", "")
        _GLOBAL_AWS_REQUEST_ID = invoke_id
        _GLOBAL_TENANT_ID = headers.get("lambda-runtime-aws-tenant-id")
        trace_id = headers.get("lambda-runtime-trace-id")
        if trace_id is not None:
            environ["_X_AMZN_TRACE_ID"] = trace_id
        elif "_X_AMZN_TRACE_ID" in environ:
            del environ["_X_AMZN_TRACE_ID"]
        _handle_event_request(client, request_handler, invoke_id, body, headers, log_error)



if __name__ == "__main__":
    main()
