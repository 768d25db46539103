/**
 * Flint's managed runtime for Node.js (nodejs18.x ... nodejs24.x), shipped inside the flint binary.
 *
 * Speaks the Lambda Runtime API 2018-06-01 at $AWS_LAMBDA_RUNTIME_API through one keep-alive
 * socket, loads the handler named by $_HANDLER from $LAMBDA_TASK_ROOT (CommonJS or ES module, in
 * the order AWS's runtime tries them), and runs invocations with the callback and promise models,
 * context, console format and error payloads of AWS's Node.js runtime, and streams the responses
 * of `awslambda.streamifyResponse` handlers as they are written. No dependencies.
 */

import { createRequire } from 'node:module';

// Built-in modules come through require, not `import`: importing a built-in into an ES module
// builds its ES facade, which reads every export (fs's lazy getters then load fs streams and
// stream), 1-2 ms of every cold start for exports this runtime never uses. What only streaming or
// ES-module handlers need is required when first needed.
const builtin = createRequire(import.meta.url);
const fs = builtin('node:fs');
const net = builtin('node:net');
const path = builtin('node:path');
const util = builtin('node:util');

/**
 * `global.gc`, as AWS's runtime provides by starting node with --expose-gc. That flag costs ~9 ms
 * of every cold start (node can no longer start from its built-in snapshot), so Flint starts node
 * without it and sets it here, before any function code runs: contexts made from now on (vm
 * contexts, workers) get `gc` from V8 as with the flag; this one takes it from a new context,
 * with the same property attributes and prototype, and execArgv still lists the flag (so
 * `child_process.fork` passes it on). What remains different: the promise that
 * `gc({ execution: 'async' })` returns, and errors it throws, come from that other context,
 * `process.execArgv` inside worker threads (node fills it natively) lacks the flag, and code
 * preloaded through NODE_OPTIONS (--require, --import) runs before `gc` exists.
 */
function exposeGc() {
  if (!process.execArgv.includes('--expose-gc')) {
    process.execArgv.unshift('--expose-gc');
  }
  if (typeof globalThis.gc === 'function') {
    return; // NODE_OPTIONS=--expose-gc
  }
  builtin('node:v8').setFlagsFromString('--expose-gc');
  const gc = builtin('node:vm').runInNewContext('gc');
  Object.setPrototypeOf(gc, Function.prototype);
  Object.defineProperty(globalThis, 'gc', {
    value: gc,
    writable: true,
    enumerable: true,
    configurable: false,
  });
}

const RUNTIME_DIR = process.env.LAMBDA_RUNTIME_DIR || '/var/runtime';
const TASK_ROOT = process.env.LAMBDA_TASK_ROOT || '/var/task';
const RUNTIME_PATH = '/2018-06-01/runtime';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';
const XRAY_ERROR_HEADER = 'Lambda-Runtime-Function-XRay-Error-Cause';

// User code is required "from" /var/runtime/index.mjs, the file AWS's runtime loads it from, so
// that the "Require stack" of a missing module reads as it does on Lambda.
const require = createRequire(path.join(RUNTIME_DIR, 'index.mjs'));

// ---------------------------------------------------------------------------------------------
// Errors, named and shaped as AWS's runtime names and shapes them.
// ---------------------------------------------------------------------------------------------

class ImportModuleError extends Error {}
class HandlerNotFound extends Error {}
class MalformedHandlerName extends Error {}
class UserCodeSyntaxError extends Error {}
class MalformedStreamingHandler extends Error {}
class InvalidStreamingOperation extends Error {}
class CallbackHandlerDeprecated extends Error {}
class UnhandledPromiseRejection extends Error {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}
class NodeJsExit extends Error {
  constructor() {
    super(
      'The Lambda runtime client detected an unexpected Node.js exit code. This is most commonly ' +
        'caused by a Promise that was never settled. For more information, see ' +
        'https://nodejs.org/docs/latest/api/process.html#exit-codes',
    );
  }
}
for (const e of [
  ImportModuleError,
  HandlerNotFound,
  MalformedHandlerName,
  UserCodeSyntaxError,
  MalformedStreamingHandler,
  InvalidStreamingOperation,
  CallbackHandlerDeprecated,
  UnhandledPromiseRejection,
  NodeJsExit,
]) {
  e.prototype.name = `Runtime.${e.name}`;
}

const CALLBACK_DEPRECATED_MESSAGE =
  'ERROR: AWS Lambda has removed support for callback-based function handlers starting with ' +
  'Node.js 24. You need to modify this function to use a supported handler signature to use ' +
  'Node.js 24 or later. For more information see ' +
  'https://docs.aws.amazon.com/lambda/latest/dg/nodejs-handler.html.';

function isError(obj) {
  return (
    obj &&
    obj.name &&
    obj.message &&
    obj.stack &&
    typeof obj.name === 'string' &&
    typeof obj.message === 'string' &&
    typeof obj.stack === 'string'
  );
}

function intoError(err) {
  return err instanceof Error ? err : new Error(err);
}

/** The body of an /error or /init/error post. */
function toRapidResponse(error) {
  try {
    if (util.types.isNativeError(error) || isError(error)) {
      return {
        errorType: error.name,
        errorMessage: error.message,
        trace: error.stack.split('\n'),
      };
    }
    return {
      errorType: typeof error,
      errorMessage: error.toString(),
      trace: [],
    };
  } catch (_err) {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
    };
  }
}

function withEnumerableProperties(error) {
  if (error instanceof Error) {
    const ret = Object.assign(
      { errorType: error.name, errorMessage: error.message, code: error.code },
      error,
    );
    if (typeof error.stack === 'string') {
      ret.stack = error.stack.split('\n');
    }
    return ret;
  }
  return error;
}

/** An error as the text log shows it: a tab, then JSON. */
function toFormatted(error) {
  try {
    return '\t' + JSON.stringify(error, (_k, v) => withEnumerableProperties(v));
  } catch (_err) {
    return '\t' + JSON.stringify(toRapidResponse(error));
  }
}

/** The X-Ray cause header AWS's runtime sends with an invocation error. */
function xrayCause(error) {
  try {
    const err = intoError(error);
    const stack = [];
    const paths = new Set();
    for (const line of (err.stack || '').split('\n').slice(1)) {
      const m = /^\s*at (?:(.+?) \()?(.+?):(\d+):\d+\)?$/.exec(line);
      if (m) {
        stack.push({ path: m[2], line: Number(m[3]), label: m[1] || 'anonymous' });
        paths.add(m[2]);
      }
    }
    const json = JSON.stringify({
      working_directory: process.cwd(),
      exceptions: [{ type: err.name, message: err.message, stack }],
      paths: [...paths],
    });
    // Header values must be printable ASCII: escape the rest the JSON way.
    return json.replace(/[^\t\x20-\x7e]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
  } catch (_err) {
    return undefined;
  }
}

function headerSafe(value) {
  return String(value).replace(/[^\t\x20-\x7e]/g, '');
}

// ---------------------------------------------------------------------------------------------
// Console: every line carries time, request id and level, as on Lambda.
// ---------------------------------------------------------------------------------------------

const REQUEST_ID_SYMBOL = Symbol.for('aws.lambda.runtime.requestId');
const TENANT_ID_SYMBOL = Symbol.for('aws.lambda.runtime.tenantId');
const structuredConsole = {};

function jsonErrorReplacer(_key, value) {
  if (value instanceof Error) {
    return Object.assign(
      {
        errorType: value?.constructor?.name ?? 'UnknownError',
        errorMessage: value.message,
        stackTrace: typeof value.stack === 'string' ? value.stack.split('\n') : value.stack,
      },
      value,
    );
  }
  return value;
}

function formatJsonMessage(requestId, timestamp, level, ...messageParams) {
  const result = { timestamp, level: level.name, requestId };
  const tenantId = globalThis[TENANT_ID_SYMBOL];
  if (tenantId !== undefined && tenantId !== null) {
    result.tenantId = tenantId;
  }
  if (messageParams.length === 1) {
    result.message = messageParams[0];
    try {
      return JSON.stringify(result, jsonErrorReplacer);
    } catch (_) {
      result.message = util.format(result.message);
      return JSON.stringify(result);
    }
  }
  result.message = util.format(...messageParams);
  for (const param of messageParams) {
    if (param instanceof Error) {
      result.errorType = param?.constructor?.name ?? 'UnknownError';
      result.errorMessage = param.message;
      result.stackTrace = typeof param.stack === 'string' ? param.stack.split('\n') : [];
      break;
    }
  }
  return JSON.stringify(result);
}

function logTextToStdout(level, message, ...params) {
  const time = new Date().toISOString();
  const requestId = globalThis[REQUEST_ID_SYMBOL];
  const line = `${time}\t${requestId}\t${level.name}\t${util.format(message, ...params)}`;
  process.stdout.write(line.replace(/\n/g, '\r') + '\n');
}

function logJsonToStdout(level, message, ...params) {
  const time = new Date().toISOString();
  const requestId = globalThis[REQUEST_ID_SYMBOL];
  const line = formatJsonMessage(requestId, time, level, message, ...params);
  process.stdout.write(line.replace(/\n/g, '\r') + '\n');
}

function patchConsole() {
  const json = process.env.AWS_LAMBDA_LOG_FORMAT?.toUpperCase() === 'JSON';
  const log = json ? logJsonToStdout : logTextToStdout;
  const levels = Object.freeze({
    TRACE: { name: 'TRACE', priority: 1 },
    DEBUG: { name: 'DEBUG', priority: 2 },
    INFO: { name: 'INFO', priority: 3 },
    WARN: { name: 'WARN', priority: 4 },
    ERROR: { name: 'ERROR', priority: 5 },
    FATAL: { name: 'FATAL', priority: 6 },
  });
  const minimum = levels[process.env.AWS_LAMBDA_LOG_LEVEL?.toUpperCase()] ?? levels.TRACE;
  const nop = () => {};
  const at = (level) =>
    level.priority >= minimum.priority ? (msg, ...params) => log(level, msg, ...params) : nop;
  console.trace = at(levels.TRACE);
  console.debug = at(levels.DEBUG);
  console.info = at(levels.INFO);
  console.log = console.info;
  console.warn = at(levels.WARN);
  console.error = at(levels.ERROR);
  console.fatal = (msg, ...params) => log(levels.FATAL, msg, ...params);
  structuredConsole.logError = json
    ? (_msg, err) => console.error(intoError(err))
    : (msg, err) => console.error(msg, toFormatted(intoError(err)));
}

// ---------------------------------------------------------------------------------------------
// Runtime API client: a minimal HTTP/1.1 client over one kept-alive socket. node's `http` costs
// ~300 µs of CPU per next+post pair here (AWS's runtime uses a native client for the same
// reason); this one parses only what the Runtime API sends. The socket is ref'd only while a
// request is in flight, so an idle connection never keeps `beforeExit` from firing (a streamed
// response's body is not counted: its pending writes keep node alive themselves).
// ---------------------------------------------------------------------------------------------

const CRLFCRLF = Buffer.from('\r\n\r\n');
const EMPTY = Buffer.alloc(0);

class RuntimeClient {
  constructor(hostPort) {
    const colon = hostPort.lastIndexOf(':');
    this.hostPort = hostPort;
    this.hostname = colon > 0 ? hostPort.slice(0, colon).replace(/^\[|\]$/g, '') : hostPort;
    this.port = colon > 0 ? parseInt(hostPort.slice(colon + 1), 10) : 80;
    this.socket = null;
    this.buffer = EMPTY;
    this.current = null; // the request in flight
    this.received = false; // whether any byte of its response arrived
    this.queue = [];
  }

  nextInvocation() {
    return new Promise((resolve, reject) => {
      this.request('GET', `${RUNTIME_PATH}/invocation/next`, {}, EMPTY, (err, res) => {
        if (err) {
          reject(err);
        } else if (res.status !== 200) {
          reject(new Error(`Runtime API /next answered ${res.status}`));
        } else {
          resolve({ bodyJson: res.body.toString('utf8'), headers: res.headers });
        }
      });
    });
  }

  postInvocationResponse(response, id, callback) {
    const body = trySerializeResponse(response);
    this.post(`${RUNTIME_PATH}/invocation/${encodeURIComponent(id)}/response`, body, {}, callback);
  }

  postInvocationError(error, id, callback) {
    const response = toRapidResponse(error);
    const headers = { [ERROR_TYPE_HEADER]: headerSafe(response.errorType) };
    const cause = xrayCause(error);
    if (cause !== undefined && cause.length < 1024 * 1024) {
      headers[XRAY_ERROR_HEADER] = cause;
    }
    this.post(
      `${RUNTIME_PATH}/invocation/${encodeURIComponent(id)}/error`,
      trySerializeResponse(response),
      headers,
      callback,
    );
  }

  postInitError(error, callback) {
    const response = toRapidResponse(error);
    this.post(
      `${RUNTIME_PATH}/init/error`,
      trySerializeResponse(response),
      { [ERROR_TYPE_HEADER]: headerSafe(response.errorType) },
      callback,
    );
  }

  /** POSTs `body` (a string or Buffer); `callback()` once the Runtime API answered. */
  post(urlPath, body, headers, callback) {
    const all = Object.assign({ 'Content-Type': 'application/json' }, headers);
    this.request('POST', urlPath, all, Buffer.from(body), (err) => {
      if (err) {
        // Without the Runtime API the environment is dead: say why on stderr and leave.
        process.stderr.write(`Runtime API request ${urlPath} failed: ${err}\n`);
        process.exit(1);
      }
      callback();
    });
  }

  /**
   * Starts a request whose body the caller then writes to `this.socket` itself (a streamed
   * response); `callback(err, res)` once answered. A body in flight is never resent.
   */
  stream(head, callback) {
    if (this.current !== null || this.queue.length > 0) {
      throw new Error('Runtime API client is busy: cannot start a response stream');
    }
    this.current = { bytes: null, callback, retried: true };
    this.received = false;
    this.buffer = EMPTY;
    if (this.socket === null) {
      this.connect();
    }
    this.socket.write(head);
  }

  request(method, urlPath, headers, body, callback) {
    let head = `${method} ${urlPath} HTTP/1.1\r\nHost: ${this.hostPort}\r\n`;
    for (const name in headers) {
      head += `${name}: ${headers[name]}\r\n`;
    }
    if (method !== 'GET') {
      head += `Content-Length: ${body.length}\r\n`;
    }
    head += '\r\n';
    const bytes = body.length ? Buffer.concat([Buffer.from(head, 'utf8'), body]) : Buffer.from(head, 'utf8');
    this.queue.push({ bytes, callback, retried: false });
    if (this.current === null) {
      this.sendNext();
    }
  }

  sendNext() {
    const req = this.queue.shift();
    if (req === undefined) {
      return;
    }
    this.current = req;
    this.received = false;
    this.buffer = EMPTY;
    if (this.socket === null) {
      this.connect();
    }
    this.socket.ref();
    this.socket.write(req.bytes);
  }

  connect() {
    const socket = net.createConnection({ host: this.hostname, port: this.port });
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', (err) => {
      this.lastError = err;
    });
    socket.on('close', () => this.onClose(socket));
    this.socket = socket;
  }

  onClose(socket) {
    if (this.socket === socket) {
      this.socket = null;
    }
    const req = this.current;
    if (req === null) {
      return;
    }
    this.current = null;
    if (!this.received && !req.retried) {
      // The kept-alive connection was closed before answering: reconnect once and resend.
      req.retried = true;
      this.queue.unshift(req);
      this.sendNext();
      return;
    }
    req.callback(this.lastError || new Error('Runtime API closed the connection'));
  }

  onData(chunk) {
    this.received = true;
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    const response = parseResponse(this.buffer);
    if (response === null || this.current === null) {
      return;
    }
    const req = this.current;
    this.current = null;
    this.buffer = EMPTY;
    if (response.headers.connection === 'close') {
      this.socket.destroy();
      this.socket = null;
    } else {
      this.socket.unref();
    }
    req.callback(null, response);
    if (this.current === null) {
      this.sendNext();
    }
  }
}

/** A complete response in `buf`, or null while more bytes are needed. */
function parseResponse(buf) {
  const headEnd = buf.indexOf(CRLFCRLF);
  if (headEnd < 0) {
    return null;
  }
  const lines = buf.toString('utf8', 0, headEnd).split('\r\n');
  const status = parseInt(lines[0].split(' ')[1], 10);
  const headers = {};
  for (let i = 1; i < lines.length; i++) {
    const colon = lines[i].indexOf(':');
    if (colon > 0) {
      headers[lines[i].slice(0, colon).trim().toLowerCase()] = lines[i].slice(colon + 1).trim();
    }
  }
  const start = headEnd + 4;
  if ((headers['transfer-encoding'] || '').toLowerCase() === 'chunked') {
    const chunks = [];
    let pos = start;
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', pos);
      if (lineEnd < 0) {
        return null;
      }
      const size = parseInt(buf.toString('latin1', pos, lineEnd).split(';')[0], 16);
      if (size === 0) {
        // The last chunk, then optional trailers, then an empty line.
        return buf.indexOf(CRLFCRLF, lineEnd) < 0 ? null : { status, headers, body: Buffer.concat(chunks) };
      }
      if (buf.length < lineEnd + 2 + size + 2) {
        return null;
      }
      chunks.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
      pos = lineEnd + 2 + size + 2;
    }
  }
  const length = parseInt(headers['content-length'] || '0', 10);
  if (buf.length < start + length) {
    return null;
  }
  return { status, headers, body: buf.subarray(start, start + length) };
}

function trySerializeResponse(body) {
  try {
    return JSON.stringify(body === undefined ? null : body);
  } catch (_err) {
    throw new Error('Unable to stringify response body');
  }
}

// ---------------------------------------------------------------------------------------------
// Loading the handler, in the order AWS's runtime tries files.
// ---------------------------------------------------------------------------------------------

const FUNCTION_EXPR = /^([^.]*)\.(.*)$/;
const HANDLER_STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HANDLER_HIGHWATERMARK = Symbol.for('aws.lambda.runtime.handler.streaming.highWaterMark');
const STREAM_RESPONSE = 'response';

function moduleRootAndHandler(fullHandlerString) {
  const handlerString = path.basename(fullHandlerString);
  const moduleRoot = fullHandlerString.substring(0, fullHandlerString.indexOf(handlerString));
  return [moduleRoot, handlerString];
}

function splitHandlerString(handler) {
  const match = handler.match(FUNCTION_EXPR);
  if (!match || match.length !== 3) {
    throw new MalformedHandlerName('Bad handler');
  }
  return [match[1], match[2]];
}

function resolveHandler(object, nestedProperty) {
  return nestedProperty.split('.').reduce((nested, key) => nested && nested[key], object);
}

function tryRequireFile(req, file, extension) {
  const p = file + (extension || '');
  return fs.existsSync(p) ? req(p) : undefined;
}

async function tryAwaitImport(file, extension) {
  const p = file + (extension || '');
  if (!fs.existsSync(p)) {
    return undefined;
  }
  const url = builtin('node:url').pathToFileURL(p).href;
  try {
    return await import(url);
  } catch (e) {
    // A bare import only NODE_PATH has (the runtime's AWS SDK, a layer's package): search it, as
    // AWS's runtime does, and load the module again (a failed link is cached under its URL).
    if (e?.code === 'ERR_MODULE_NOT_FOUND' && installNodePathHooks()) {
      return await import(url + '?node-path');
    }
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// ES module imports from NODE_PATH. Node's ES module resolution ignores NODE_PATH; AWS's Node.js
// runtimes (18 and later) search it, which is how `import ... from '@aws-sdk/client-s3'` finds the
// SDK in /var/runtime/node_modules and how layers' /opt/nodejs/node_modules work for ES modules.
// Flint adds a resolve hook: at start where node has synchronous in-thread hooks
// (module.registerHooks, Node 22.15+), else (module.register, whose hooks thread costs tens of ms)
// only when a handler's import has failed for want of it.
// ---------------------------------------------------------------------------------------------

function nodePathParents() {
  // A parent module just above each NODE_PATH directory: resolving from it walks into that
  // directory (`/opt/nodejs/node_modules` from `/opt/nodejs/_.mjs`).
  return (process.env.NODE_PATH || '')
    .split(':')
    .filter(Boolean)
    .map((d) => (d.endsWith('/node_modules') ? d.slice(0, -'/node_modules'.length) : d) + '/_.mjs')
    .map((p) => builtin('node:url').pathToFileURL(p).href);
}

/** Whether an import specifier is a bare package name (not relative, absolute, `#` or a URL). */
function isBareSpecifier(specifier) {
  return !/^(\.|\/|#|[a-zA-Z][a-zA-Z0-9+.-]*:)/.test(specifier);
}

// The same hook for module.register's hooks thread, which gets no closure: as source.
const nodePathHookSource = () => `
const parents = ${JSON.stringify(nodePathParents())};
const bare = ${isBareSpecifier.toString()};
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (e) {
    if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !bare(specifier)) throw e;
    for (const parentURL of parents) {
      try { return await next(specifier, { ...context, parentURL }); } catch {}
    }
    throw e;
  }
}
`;

let nodePathHooks = false;

/**
 * Installs the NODE_PATH resolve hook once; false when it is not installed (already there, no
 * NODE_PATH, or `eagerOnly` and this node has only the costly off-thread hooks).
 */
function installNodePathHooks(eagerOnly) {
  if (nodePathHooks || !process.env.NODE_PATH) {
    return false;
  }
  const mod = builtin('node:module');
  if (typeof mod.registerHooks === 'function') {
    const parents = nodePathParents();
    mod.registerHooks({
      resolve(specifier, context, next) {
        try {
          return next(specifier, context);
        } catch (e) {
          if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !isBareSpecifier(specifier)) {
            throw e;
          }
          for (const parentURL of parents) {
            try {
              return next(specifier, { ...context, parentURL });
            } catch {
              // not in this directory
            }
          }
          throw e;
        }
      },
    });
  } else if (!eagerOnly && typeof mod.register === 'function') {
    mod.register('data:text/javascript,' + encodeURIComponent(nodePathHookSource()));
  } else {
    return false;
  }
  nodePathHooks = true;
  return true;
}

function hasFolderPackageJsonTypeModule(folder) {
  if (folder.endsWith('/node_modules')) {
    return false;
  }
  const pj = path.join(folder, '/package.json');
  if (fs.existsSync(pj)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(pj));
      if (pkg) {
        return pkg.type === 'module';
      }
    } catch (e) {
      console.warn(`${pj} cannot be read, it will be ignored for ES module detection purposes.`, e);
      return false;
    }
  }
  if (folder === '/') {
    return false;
  }
  return hasFolderPackageJsonTypeModule(path.resolve(folder, '..'));
}

function nodeMajor() {
  return parseInt((process.versions.node || '0').split('.')[0], 10) || 0;
}

async function tryRequire(req, appRoot, moduleRoot, module) {
  const lambdaStylePath = path.resolve(appRoot, moduleRoot, module);
  const supportsTs = nodeMajor() >= 24;

  // Extensionless files (and directories with an index) are loaded via require.
  const extensionless = tryRequireFile(req, lambdaStylePath);
  if (extensionless) {
    return extensionless;
  }

  // Unless the nearest package.json says "type": "module", .js is CommonJS.
  const pjHasModule = hasFolderPackageJsonTypeModule(path.resolve(path.dirname(lambdaStylePath)));
  if (!pjHasModule) {
    const loaded = tryRequireFile(req, lambdaStylePath, '.js');
    if (loaded) {
      return loaded;
    }
  }

  const loaded =
    (pjHasModule && (await tryAwaitImport(lambdaStylePath, '.js'))) ||
    (await tryAwaitImport(lambdaStylePath, '.mjs')) ||
    tryRequireFile(req, lambdaStylePath, '.cjs') ||
    (supportsTs && !pjHasModule && tryRequireFile(req, lambdaStylePath, '.ts')) ||
    (supportsTs && pjHasModule && (await tryAwaitImport(lambdaStylePath, '.ts'))) ||
    (supportsTs && (await tryAwaitImport(lambdaStylePath, '.mts'))) ||
    (supportsTs && tryRequireFile(req, lambdaStylePath, '.cts'));
  if (loaded) {
    return loaded;
  }

  // Finally node's own resolution (node_modules, NODE_PATH) from the app root.
  const nodeStylePath = req.resolve(module, { paths: [appRoot, moduleRoot] });
  return req(nodeStylePath);
}

async function loadUserApp(req, appRoot, moduleRoot, module) {
  try {
    return await tryRequire(req, appRoot, moduleRoot, module);
  } catch (e) {
    if (e instanceof SyntaxError) {
      throw new UserCodeSyntaxError(e);
    } else if (e.code !== undefined && e.code === 'MODULE_NOT_FOUND') {
      throw new ImportModuleError(e);
    }
    throw e;
  }
}

/** The handler `fullHandlerString` names under `appRoot`, loaded through `req` (a require). */
async function loadHandler(req, appRoot, fullHandlerString) {
  if (fullHandlerString.includes('..')) {
    throw new MalformedHandlerName(
      `'${fullHandlerString}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const [moduleRoot, moduleAndHandler] = moduleRootAndHandler(fullHandlerString);
  const [module, handlerPath] = splitHandlerString(moduleAndHandler);
  installNodePathHooks(true);
  const userApp = await loadUserApp(req, appRoot, moduleRoot, module);
  const handlerFunc = resolveHandler(userApp, handlerPath);
  if (!handlerFunc) {
    throw new HandlerNotFound(`${fullHandlerString} is undefined or not exported`);
  }
  if (typeof handlerFunc !== 'function') {
    throw new HandlerNotFound(`${fullHandlerString} is not a function`);
  }
  return handlerFunc;
}

function handlerMetadata(handler) {
  const streaming = handler[HANDLER_STREAMING];
  if (streaming !== undefined && streaming !== null && streaming !== false && streaming !== STREAM_RESPONSE) {
    throw new MalformedStreamingHandler('Only response streaming is supported.');
  }
  let isAsync = false;
  try {
    isAsync = handler.constructor?.name === 'AsyncFunction';
  } catch (_err) {
    isAsync = false;
  }
  const highWaterMark = parseInt(handler[HANDLER_HIGHWATERMARK]);
  return {
    streaming: streaming === STREAM_RESPONSE,
    isAsync,
    argsNum: handler.length,
    highWaterMark: isNaN(highWaterMark) ? undefined : highWaterMark,
  };
}

function executionEnvMajor() {
  const m = /^AWS_Lambda_nodejs(\d+)/.exec(process.env.AWS_EXECUTION_ENV || '');
  return m ? parseInt(m[1], 10) : 0;
}

// ---------------------------------------------------------------------------------------------
// Response streaming (awslambda.streamifyResponse), as AWS's runtime client streams: the
// handler's writes go out as the chunks of one chunked POST /response
// (`Lambda-Runtime-Function-Response-Mode: streaming`) as they are written. The request head goes
// with the first write, so `setContentType` works until then; an error ends the stream with the
// `Lambda-Runtime-Function-Error-Type`/`-Body` trailers, before any write as well (an empty
// stream with the trailers, as AWS's client sends it).
// ---------------------------------------------------------------------------------------------

const HTTP_INTEGRATION_CONTENT_TYPE = 'application/vnd.awslambda.http-integration-response';
const DEFAULT_STREAM_CONTENT_TYPE = 'application/octet-stream';
const RESPONSE_MODE_HEADER = 'Lambda-Runtime-Function-Response-Mode';
const ERROR_BODY_TRAILER = 'Lambda-Runtime-Function-Error-Body';
const CRLF = Buffer.from('\r\n');
const PRELUDE_DELIMITER_LEN = 8;
// What a stream destroyed before its end reports: what Flint's Runtime API says of a cut stream.
const DESTROYED_STREAM_ERROR = {
  errorType: 'Runtime.TruncatedResponse',
  errorMessage: 'The response stream was destroyed before it ended.',
  trace: [],
};

/** The trailers that end a stream with `error`, as AWS's client writes them. */
function errorTrailers(error) {
  const response = error === DESTROYED_STREAM_ERROR ? error : toRapidResponse(error);
  return {
    [ERROR_TYPE_HEADER]: headerSafe(response.errorType),
    [ERROR_BODY_TRAILER]: Buffer.from(JSON.stringify(response)).toString('base64'),
  };
}

/**
 * The transport of one streamed response on the client's socket: the head (sent once, with the
 * content type as it is then), body chunks in HTTP/1.1 chunked framing, the last chunk with
 * optional trailers, then the Runtime API's answer.
 */
class StreamingPost {
  constructor(client, urlPath) {
    this.client = client;
    this.urlPath = urlPath;
    this.contentType = DEFAULT_STREAM_CONTENT_TYPE;
    this.begun = false;
    this.ended = false;
    this.answered = false;
    this.waiting = [];
  }

  begin() {
    if (this.begun) {
      return;
    }
    this.begun = true;
    const head =
      `POST ${this.urlPath} HTTP/1.1\r\nHost: ${this.client.hostPort}\r\n` +
      `Content-Type: ${headerSafe(this.contentType)}\r\n${RESPONSE_MODE_HEADER}: streaming\r\n` +
      `Trailer: ${ERROR_TYPE_HEADER}, ${ERROR_BODY_TRAILER}\r\nTransfer-Encoding: chunked\r\n\r\n`;
    this.client.stream(head, (err, res) => {
      if (err) {
        process.stderr.write(`Runtime API request ${this.urlPath} failed: ${err}\n`);
        process.exit(1);
      }
      if (res.status !== 202) {
        process.stderr.write(
          `Runtime API answered the response stream with ${res.status}: ${res.body.toString('utf8')}\n`,
        );
      }
      this.answered = true;
      for (const then of this.waiting.splice(0)) {
        then();
      }
    });
  }

  /** Sends `buffers` (`size` bytes) as one chunk; `callback` once the socket takes more. */
  write(buffers, size, callback) {
    this.begin();
    const socket = this.client.socket;
    // Answered early (too large) or the connection is gone: the rest goes nowhere.
    if (size === 0 || this.ended || this.answered || socket === null) {
      callback();
      return;
    }
    socket.cork();
    socket.write(size.toString(16) + '\r\n');
    for (const b of buffers) {
      socket.write(b);
    }
    const more = socket.write(CRLF);
    socket.uncork();
    if (more) {
      callback();
      return;
    }
    const resume = () => {
      socket.off('drain', resume);
      socket.off('close', resume);
      callback();
    };
    socket.on('drain', resume);
    socket.on('close', resume);
  }

  /** Sends the last chunk (once), with `trailers` when given, and awaits the answer. */
  end(trailers) {
    if (this.ended) {
      return;
    }
    this.begin();
    this.ended = true;
    const socket = this.client.socket;
    if (this.answered || socket === null) {
      return;
    }
    let last = '0\r\n';
    for (const name in trailers) {
      last += `${name}: ${trailers[name]}\r\n`;
    }
    socket.ref(); // until the answer: the invocation is not over before it
    socket.write(last + '\r\n');
  }

  /** Calls `then` once the Runtime API answered the stream. */
  whenAnswered(then) {
    if (this.answered) {
      then();
    } else {
      this.waiting.push(then);
    }
  }
}

const STREAM_POST = Symbol('post');
const STREAM_FAILURE = Symbol('failure');
const STREAM_WRITTEN = Symbol('written');
let ResponseStream = null;

/**
 * The `responseStream` a streaming handler gets: a Writable (highWaterMark, 'drain', pipeline)
 * with AWS's additions, `setContentType` and `_onBeforeFirstWrite`. Defined on first use: only
 * streaming handlers load `node:stream`.
 */
function responseStreamClass() {
  if (ResponseStream !== null) {
    return ResponseStream;
  }
  const { Writable } = builtin('node:stream');
  ResponseStream = class ResponseStream extends Writable {
    constructor(post, highWaterMark) {
      super(highWaterMark === undefined ? {} : { highWaterMark });
      this[STREAM_POST] = post;
      this[STREAM_FAILURE] = undefined;
      this[STREAM_WRITTEN] = false;
      this._onBeforeFirstWrite = undefined;
    }

    setContentType(contentType) {
      if (this[STREAM_WRITTEN]) {
        throw new InvalidStreamingOperation('Cannot set content-type, too late.');
      }
      this[STREAM_POST].contentType = contentType;
    }

    write(chunk, encoding, callback) {
      if (typeof chunk !== 'string' && !Buffer.isBuffer(chunk) && chunk?.constructor !== Uint8Array) {
        chunk = JSON.stringify(chunk); // as AWS's stream takes objects
      }
      if (this.beforeFirstWrite()) {
        // The prelude and the first write go out as one chunk.
        const ret = super.write(chunk, encoding, callback);
        this.uncork();
        return ret;
      }
      return super.write(chunk, encoding, callback);
    }

    end(chunk, encoding, callback) {
      // Unlike AWS's client (aws-lambda-nodejs-runtime-interface-client#97), a prelude set by
      // HttpResponseStream.from goes out when the stream is only ended, too.
      this.beforeFirstWrite();
      return super.end(chunk, encoding, callback);
    }

    /** Marks the content type fixed; runs `_onBeforeFirstWrite` corked (true) if there is one. */
    beforeFirstWrite() {
      if (this[STREAM_WRITTEN]) {
        return false;
      }
      this[STREAM_WRITTEN] = true;
      if (typeof this._onBeforeFirstWrite !== 'function' || this.writableEnded) {
        return false;
      }
      this.cork();
      this._onBeforeFirstWrite((ch) => super.write(ch));
      return true;
    }

    _write(chunk, _encoding, callback) {
      this[STREAM_POST].write([chunk], chunk.length, callback);
    }

    _writev(chunks, callback) {
      let size = 0;
      const buffers = chunks.map(({ chunk }) => {
        size += chunk.length;
        return chunk;
      });
      this[STREAM_POST].write(buffers, size, callback);
    }

    _final(callback) {
      this[STREAM_POST].end(this[STREAM_FAILURE]);
      callback();
    }

    _destroy(err, callback) {
      // Destroyed before its end (a pipeline whose source failed): the stream ends with the
      // error, and the handler's own failure, if any, comes too late to change it.
      const post = this[STREAM_POST];
      if (!post.ended) {
        post.end(errorTrailers(err ?? DESTROYED_STREAM_ERROR));
      }
      callback(err);
    }
  };
  return ResponseStream;
}

class HttpResponseStream {
  /** Sends `prelude` (status, headers, cookies) before the body, as AWS's runtime does. */
  static from(underlyingStream, prelude) {
    underlyingStream.setContentType(HTTP_INTEGRATION_CONTENT_TYPE);
    // JSON has no NUL byte, so the 8 NUL bytes after it are an unambiguous end.
    const metadataPrelude = JSON.stringify(prelude);
    underlyingStream._onBeforeFirstWrite = (write) => {
      write(metadataPrelude);
      write(new Uint8Array(PRELUDE_DELIMITER_LEN));
    };
    return underlyingStream;
  }
}

function installAwsLambdaGlobal() {
  const off = process.env.AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA;
  if (off === '1' || off === 'true') {
    return;
  }
  globalThis.awslambda = {
    streamifyResponse: (handler, options) => {
      handler[HANDLER_STREAMING] = STREAM_RESPONSE;
      if (typeof options?.highWaterMark === 'number') {
        handler[HANDLER_HIGHWATERMARK] = parseInt(options.highWaterMark);
      }
      return handler;
    },
    HttpResponseStream,
  };
}

// ---------------------------------------------------------------------------------------------
// The invoke loop: callbacks, promises and `callbackWaitsForEmptyEventLoop`, as AWS's runtime.
// ---------------------------------------------------------------------------------------------

const BEFORE_EXIT_SYMBOL = Symbol.for('aws.lambda.beforeExit');
const NO_OP = () => {};
const BeforeExitListener = {
  invoke: () => globalThis[BEFORE_EXIT_SYMBOL](),
  reset: () => (globalThis[BEFORE_EXIT_SYMBOL] = NO_OP),
  set: (listener) => (globalThis[BEFORE_EXIT_SYMBOL] = listener),
};

function parseJsonHeader(value, name) {
  if (value === undefined) {
    return undefined;
  }
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err.toString()}`);
  }
}

function buildContext(headers, callbackContext) {
  const invokeId = headers['lambda-runtime-aws-request-id'];
  const deadline = headers['lambda-runtime-deadline-ms'];
  if (headers['lambda-runtime-trace-id']) {
    process.env._X_AMZN_TRACE_ID = headers['lambda-runtime-trace-id'];
  } else {
    delete process.env._X_AMZN_TRACE_ID;
  }
  return Object.assign(
    callbackContext,
    {
      functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    },
    {
      clientContext: parseJsonHeader(headers['lambda-runtime-client-context'], 'ClientContext'),
      identity: parseJsonHeader(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
      invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
      awsRequestId: invokeId,
      tenantId: headers['lambda-runtime-aws-tenant-id'],
      getRemainingTimeInMillis: function () {
        return deadline - Date.now();
      },
    },
  );
}

/** The node-style callback and context.succeed/fail/done of one invocation; first call wins. */
function buildCallbackContext(client, id, scheduleNext) {
  const postError = (err, callback) => {
    structuredConsole.logError('Invoke Error', err);
    client.postInvocationError(err, id, callback);
  };
  let isCompleteInvoked = false;
  const complete = (result, callback) => {
    if (isCompleteInvoked) {
      console.error(
        'Invocation has already been reported as done. Cannot call complete more than once per invocation.',
      );
      return;
    }
    isCompleteInvoked = true;
    let body;
    try {
      body = trySerializeResponse(result);
    } catch (err) {
      postError(err, callback);
      return;
    }
    client.post(`${RUNTIME_PATH}/invocation/${encodeURIComponent(id)}/response`, body, {}, callback);
  };
  let waitForEmptyEventLoop = true;

  const callback = function (err, result) {
    BeforeExitListener.reset();
    if (err !== undefined && err !== null) {
      postError(err, scheduleNext);
    } else if (!waitForEmptyEventLoop) {
      complete(result, scheduleNext);
    } else {
      BeforeExitListener.set(() => {
        setImmediate(() => complete(result, scheduleNext));
      });
    }
  };
  const done = (err, result) => {
    BeforeExitListener.reset();
    if (err !== undefined && err !== null) {
      postError(err, scheduleNext);
    } else {
      complete(result, scheduleNext);
    }
  };
  const succeed = (result) => done(null, result);
  const fail = (err) => (err === undefined || err === null ? done('handled') : done(err, null));

  let finished = false;
  const once =
    (fn) =>
    (...args) => {
      if (!finished) {
        fn(...args);
        finished = true;
      }
    };
  const callbackContext = {
    get callbackWaitsForEmptyEventLoop() {
      return waitForEmptyEventLoop;
    },
    set callbackWaitsForEmptyEventLoop(value) {
      waitForEmptyEventLoop = value;
    },
    succeed: once(succeed),
    fail: once(fail),
    done: once(done),
  };
  const markCompleted = () => {
    isCompleteInvoked = true;
  };
  return [once(callback), callbackContext, markCompleted];
}

function isPromise(obj) {
  return obj && obj.then && typeof obj.then === 'function';
}

class Runtime {
  constructor(client, handler, metadata, errorCallbacks) {
    this.client = client;
    this.handler = handler;
    this.metadata = metadata;
    this.errorCallbacks = errorCallbacks;
    this.handleOnce = metadata.streaming ? this.handleOnceStreaming : this.handleOnceNonStreaming;
  }

  scheduleIteration() {
    setImmediate(() => {
      this.handleOnce().then(
        () => {},
        (err) => {
          console.log(`Unexpected Top Level Error: ${err.toString()}`);
          this.errorCallbacks.uncaughtException(err);
        },
      );
    });
  }

  async handleOnceNonStreaming() {
    const { bodyJson, headers } = await this.client.nextInvocation();
    const invokeId = headers['lambda-runtime-aws-request-id'];
    if (!invokeId) {
      throw new Error('invocation id is missing or invalid');
    }
    globalThis[REQUEST_ID_SYMBOL] = invokeId;
    globalThis[TENANT_ID_SYMBOL] = headers['lambda-runtime-aws-tenant-id'];

    const [callback, callbackContext, markCompleted] = buildCallbackContext(
      this.client,
      invokeId,
      this.scheduleIteration.bind(this),
    );
    try {
      this.setErrorCallbacks(invokeId);
      this.setDefaultExitListener(invokeId, markCompleted, this.metadata.isAsync);
      const result = this.handler(
        JSON.parse(bodyJson),
        buildContext(headers, callbackContext),
        callback,
      );
      if (isPromise(result)) {
        result.then(callbackContext.succeed, callbackContext.fail).catch(callbackContext.fail);
      }
    } catch (err) {
      callback(err);
    }
  }

  async handleOnceStreaming() {
    const { bodyJson, headers } = await this.client.nextInvocation();
    const invokeId = headers['lambda-runtime-aws-request-id'];
    if (!invokeId) {
      throw new Error('invocation id is missing or invalid');
    }
    globalThis[REQUEST_ID_SYMBOL] = invokeId;
    globalThis[TENANT_ID_SYMBOL] = headers['lambda-runtime-aws-tenant-id'];

    const post = new StreamingPost(
      this.client,
      `${RUNTIME_PATH}/invocation/${encodeURIComponent(invokeId)}/response`,
    );
    const stream = new (responseStreamClass())(post, this.metadata.highWaterMark);
    let waitForEmptyEventLoop = true;
    const streamingContext = {
      get callbackWaitsForEmptyEventLoop() {
        return waitForEmptyEventLoop;
      },
      set callbackWaitsForEmptyEventLoop(value) {
        waitForEmptyEventLoop = value;
      },
    };
    // The next invocation once this one is over, after the event loop empties unless told not
    // to (AWS's streaming context honours callbackWaitsForEmptyEventLoop).
    let over = false;
    const scheduleNext = () => {
      if (over) {
        return;
      }
      over = true;
      BeforeExitListener.reset();
      if (!waitForEmptyEventLoop) {
        this.scheduleIteration();
      } else {
        BeforeExitListener.set(() => setImmediate(() => this.scheduleIteration()));
      }
    };
    // Ends the stream with `err` in the trailers (after what was written, unless it has ended
    // already: then the response stands), then `then()` once the Runtime API answered.
    const endWithError = (err, then) => {
      if (!stream.writableEnded && !stream.destroyed) {
        stream[STREAM_FAILURE] = errorTrailers(err);
        stream.end();
      } else if (!post.ended) {
        post.end(errorTrailers(err));
      }
      post.whenAnswered(then);
    };
    const fail = (err, then) => {
      structuredConsole.logError('Invoke Error', err);
      endWithError(err, then);
    };
    this.errorCallbacks.uncaughtException = (error) => endWithError(error, () => process.exit(129));
    this.errorCallbacks.unhandledRejection = (error) => endWithError(error, () => process.exit(128));

    // Nothing left to run (the Runtime API socket is ref'd only while an answer is awaited): the
    // handler's promise can no longer settle, or the stream can no longer end.
    let settled = false;
    BeforeExitListener.set(() => {
      BeforeExitListener.reset();
      fail(settled ? 'Response stream is not finished.' : new NodeJsExit(), scheduleNext);
    });
    try {
      const context = buildContext(headers, streamingContext);
      const result = this.handler(JSON.parse(bodyJson), stream, context);
      if (!isPromise(result)) {
        fail('Streaming does not support non-async handlers.', scheduleNext);
        return;
      }
      const value = await result;
      settled = true;
      if (typeof value !== 'undefined') {
        console.warn('Streaming handlers ignore return values.');
      }
      // The invocation is over when the stream has ended (now or later, e.g. by a pipeline the
      // handler did not await) and the Runtime API has answered.
      post.whenAnswered(scheduleNext);
    } catch (err) {
      settled = true;
      fail(err, scheduleNext);
    }
  }

  setErrorCallbacks(invokeId) {
    this.errorCallbacks.uncaughtException = (error) => {
      this.client.postInvocationError(error, invokeId, () => process.exit(129));
    };
    this.errorCallbacks.unhandledRejection = (error) => {
      this.client.postInvocationError(error, invokeId, () => process.exit(128));
    };
  }

  /** The event loop emptied before the handler answered. */
  setDefaultExitListener(invokeId, markCompleted, isAsync) {
    BeforeExitListener.set(() => {
      markCompleted();
      if (isAsync) {
        // An async handler whose promise never settles: an error, as on Lambda.
        const error = new NodeJsExit();
        structuredConsole.logError('Invoke Error', error);
        this.client.postInvocationError(error, invokeId, () => this.scheduleIteration());
      } else {
        // A sync handler that never called back answers null.
        this.client.postInvocationResponse(null, invokeId, () => this.scheduleIteration());
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Start-up.
// ---------------------------------------------------------------------------------------------

/**
 * In a pre-initialised sandbox, Flint started this node before the function was known
 * (crates/sandbox/src/preinit.rs): the descriptor on which it waits for the function, or null in
 * a fresh start.
 */
function preinitFd() {
  const fd = process.env._FLINT_PREINIT_FD;
  if (fd === undefined || process.env._FLINT_PREINIT_PAD === undefined || !/^\d+$/.test(fd)) {
    return null;
  }
  return Number(fd);
}

/**
 * Before the function is known, runs once the code every start runs after it: loading a CommonJS
 * and an ES module handler (node/preinit/warm.js and warm_esm.mjs, shipped beside this file) and
 * opening a Runtime API connection (to port 0, which nothing can listen on: refused). V8 compiles
 * a function the first time it runs, node's own internals included, and a fresh start pays for it
 * after the function is known: ~1-2 ms each for the handler's module and the first connection.
 * No trace is left that the function could see: the CommonJS module is loaded through a require
 * of its own (so it is no module's child) and taken out of `require.cache` and the path cache;
 * the ES module stays in the loader's private module map; neither loads a built-in module a fresh
 * start does not (tests/test_preinit.py compares `process.moduleLoadList`); the socket is closed
 * without node creating its stderr stream.
 */
const WARM_RUNTIME_API = '127.0.0.1:0';

async function warmUp() {
  const dir = path.join(RUNTIME_DIR, 'node', 'preinit');
  try {
    const Module = builtin('node:module');
    const cached = new Set(Object.keys(Module._pathCache));
    const warmRequire = createRequire(path.join(dir, 'index.mjs'));
    const cjs = await loadHandler(warmRequire, dir, 'warm.handler');
    for (const key of Object.keys(warmRequire.cache)) {
      if (key.startsWith(dir + path.sep)) {
        delete warmRequire.cache[key];
      }
    }
    for (const key of Object.keys(Module._pathCache)) {
      if (!cached.has(key)) {
        delete Module._pathCache[key];
      }
    }
    const handler = await loadHandler(warmRequire, dir, 'warm_esm.handler');
    const metadata = handlerMetadata(handler);
    executionEnvMajor();
    handlerMetadata(cjs);
    const client = new RuntimeClient(WARM_RUNTIME_API);
    const runtime = new Runtime(client, handler, metadata, {});
    await new Promise((resolve) => setImmediate(resolve));
    // A socket that closes reads `process.stderr` (net.js compares itself with it), which makes
    // node create its stderr stream: a fresh start has none yet. Hidden meanwhile, put back as
    // it was (the same getter).
    const stderr = Object.getOwnPropertyDescriptor(process, 'stderr');
    Object.defineProperty(process, 'stderr', { value: null, configurable: true });
    // Refused at once, unless a firewall drops the packets: then given up on (no retry).
    const timer = setTimeout(() => {
      if (client.current !== null) {
        client.current.retried = true;
      }
      client.socket?.destroy();
    }, 200);
    try {
      await runtime.handleOnce().catch(() => {});
    } finally {
      clearTimeout(timer);
      Object.defineProperty(process, 'stderr', stderr);
    }
  } catch (_err) {
    // Only slower.
  }
  // Set again, from the function's variables, once they are known.
  patchConsole();
  const listener = () => {};
  process.on('uncaughtException', listener);
  process.removeListener('uncaughtException', listener);
}

/**
 * Waits on `fd` for the function's environment and working directory and takes them as a fresh
 * start has them, before anything reads them.
 */
async function awaitFunction(fd) {
  // What node itself added to its environment at start is added by a fresh start too, from the
  // same start-up variables: keep it, after the function's.
  const atExec = new Set(fs.readFileSync('/proc/self/environ', 'latin1').split('\0')
    .map((e) => e.slice(0, e.indexOf('='))));
  const added = Object.entries(process.env).filter(([k]) => !atExec.has(k));
  try {
    if (!fs.fstatSync(fd).isSocket()) {
      return;
    }
  } catch (_err) {
    return; // a function's own variables of these names, in a fresh start
  }
  await warmUp();
  try {
    fs.writeSync(fd, 'r');
  } catch (_err) {
    return; // a function's own variables of these names, in a fresh start
  }
  const chunks = [];
  const buf = Buffer.allocUnsafe(65536);
  for (;;) {
    const got = fs.readSync(fd, buf, 0, buf.length, null);
    if (got === 0) {
      break;
    }
    chunks.push(Buffer.from(buf.subarray(0, got)));
  }
  fs.closeSync(fd);
  const start = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  for (const name of Object.keys(process.env)) {
    delete process.env[name];
  }
  for (const [name, value] of start.env) {
    process.env[name] = value;
  }
  for (const [name, value] of added) {
    if (!(name in process.env)) {
      process.env[name] = value;
    }
  }
  process.chdir(start.cwd);
}

async function main() {
  // Reads nothing of the function: done before the wait (no module order changes: the wait
  // loads none).
  exposeGc();
  const fd = preinitFd();
  if (fd !== null) {
    await awaitFunction(fd);
  }
  patchConsole();
  const client = new RuntimeClient(process.env.AWS_LAMBDA_RUNTIME_API || '127.0.0.1:9001');

  const errorCallbacks = {
    uncaughtException: (error) => client.postInitError(error, () => process.exit(129)),
    unhandledRejection: (error) => client.postInitError(error, () => process.exit(128)),
  };
  process.on('uncaughtException', (error) => {
    structuredConsole.logError('Uncaught Exception', error);
    errorCallbacks.uncaughtException(error);
  });
  process.on('unhandledRejection', (reason, promise) => {
    const error = new UnhandledPromiseRejection(reason, promise);
    structuredConsole.logError('Unhandled Promise Rejection', error);
    errorCallbacks.unhandledRejection(error);
  });
  BeforeExitListener.reset();
  process.on('beforeExit', BeforeExitListener.invoke);

  try {
    process.chdir(TASK_ROOT);
  } catch (_err) {
    // Lambda starts the runtime in /var/task; elsewhere (tests) the cwd stays as given.
  }
  installAwsLambdaGlobal();

  let handler;
  let metadata;
  try {
    handler = await loadHandler(require, TASK_ROOT, process.env._HANDLER || '');
    metadata = handlerMetadata(handler);
    if (executionEnvMajor() >= 24 && metadata.argsNum >= 3 && !metadata.streaming) {
      throw new CallbackHandlerDeprecated(CALLBACK_DEPRECATED_MESSAGE);
    }
  } catch (error) {
    structuredConsole.logError('Uncaught Exception', error);
    errorCallbacks.uncaughtException(error);
    return;
  }
  new Runtime(client, handler, metadata, errorCallbacks).scheduleIteration();
}

main();
