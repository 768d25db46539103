package flint.lambda;

import com.amazonaws.services.lambda.runtime.Client;
import com.amazonaws.services.lambda.runtime.ClientContext;
import com.amazonaws.services.lambda.runtime.CognitoIdentity;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.LambdaLogger;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import com.amazonaws.services.lambda.runtime.RequestStreamHandler;
import com.amazonaws.services.lambda.runtime.logging.LogLevel;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.lang.reflect.TypeVariable;
import java.net.MalformedURLException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * Flint's runtime client for the Java managed runtimes (java8.al2 ... java25): loads the
 * function's handler (`pkg.Class::method` or `pkg.Class`) from /var/task (classes and
 * lib/*.jar) and the layers' /opt/java/lib jars, then serves invocations from the Runtime API as
 * AWS's Java runtime does: RequestHandler / RequestStreamHandler or a named method, JSON in and
 * out, errors as {errorMessage, errorType: exception class, stackTrace: ["cls.m(File.java:1)"]}.
 */
public final class Main {
    private static final String OWN_PACKAGE = "flint.lambda.";

    private Main() {}

    /** An error reported as is: message and type of AWS's Java runtime for this case. */
    static final class UserFault extends Exception {
        private static final long serialVersionUID = 1L;
        final String errorType;

        UserFault(String message, String errorType, Throwable cause) {
            super(message, cause);
            this.errorType = errorType;
        }
    }

    /**
     * The event could not become the handler's input type, or the result could not become JSON:
     * reported as AWS's Java runtime reports Jackson's failures (a RuntimeException whose cause is
     * an UncheckedIOException carrying the detail).
     */
    static final class SerializationFault extends RuntimeException {
        private static final long serialVersionUID = 1L;

        SerializationFault(String message, Throwable detail) {
            super(message, detail);
        }

        static Object input(byte[] payload, Type type) {
            try {
                return Json.convert(Json.parse(payload), type);
            } catch (Json.JsonException e) {
                throw new SerializationFault("An error occurred during JSON parsing", e);
            }
        }

        static byte[] output(Object result) {
            try {
                return Json.write(result);
            } catch (Json.JsonException e) {
                throw new SerializationFault(
                        "An error occurred during JSON serialization of response", e);
            }
        }

        byte[] toJson() {
            StringBuilder sb = new StringBuilder("{\"errorMessage\":");
            Json.quote(sb, getMessage());
            sb.append(",\"errorType\":\"java.lang.RuntimeException\",\"stackTrace\":[],");
            sb.append("\"cause\":{\"errorMessage\":");
            Json.quote(sb, String.valueOf(getCause().getMessage()));
            sb.append(",\"errorType\":\"java.io.UncheckedIOException\",\"stackTrace\":[]}}");
            return sb.toString().getBytes(StandardCharsets.UTF_8);
        }
    }

    /** How one invocation calls the function. */
    interface Invoker {
        byte[] invoke(byte[] payload, Context context) throws Throwable;
    }

    public static void main(String[] args) {
        String api = System.getenv("AWS_LAMBDA_RUNTIME_API");
        if (api == null) {
            System.err.println("AWS_LAMBDA_RUNTIME_API is not set");
            System.exit(1);
            return;
        }
        RuntimeClient client = new RuntimeClient(api);
        String handler = env("_HANDLER", "");
        String taskRoot = env("LAMBDA_TASK_ROOT", "/var/task");
        Invoker invoker;
        try {
            ClassLoader loader = userClassLoader(taskRoot);
            Thread.currentThread().setContextClassLoader(loader);
            invoker = load(handler, loader);
        } catch (UserFault fault) {
            Throwable cause = fault.getCause();
            byte[] error = errorJson(fault.getMessage(), fault.errorType,
                    cause == null ? new StackTraceElement[0] : cause.getStackTrace(), null);
            if (Logger.JSON) {
                new Logger().log(fault.getMessage(), LogLevel.ERROR);
            } else {
                System.out.println(fault.getMessage());
            }
            try {
                client.initError(error, fault.errorType);
            } catch (Exception e) {
                System.err.println("cannot report the init error: " + e);
            }
            System.exit(1);
            return;
        }
        Logger logger = new Logger();
        while (true) {
            RuntimeClient.Response next;
            try {
                next = client.next();
            } catch (Exception e) {
                System.err.println("Runtime API: " + e);
                System.exit(1);
                return;
            }
            String requestId = next.headers.getOrDefault("lambda-runtime-aws-request-id", "");
            Logger.requestId = requestId;
            String traceId = next.headers.get("lambda-runtime-trace-id");
            if (traceId != null) {
                System.setProperty("com.amazonaws.xray.traceHeader", traceId);
            } else {
                System.clearProperty("com.amazonaws.xray.traceHeader");
            }
            try {
                LambdaContext context = new LambdaContext(requestId, next.headers, logger);
                byte[] result;
                try {
                    result = invoker.invoke(next.body, context);
                } catch (InvocationTargetException e) {
                    throw e.getCause() == null ? e : e.getCause();
                }
                client.respond(requestId, result, "application/json");
            } catch (Throwable t) {
                Throwable shown = t instanceof ExceptionInInitializerError && t.getCause() != null
                        ? t.getCause() : t;
                String type = shown instanceof SerializationFault
                        ? "java.lang.RuntimeException" : shown.getClass().getName();
                byte[] error = shown instanceof SerializationFault
                        ? ((SerializationFault) shown).toJson() : errorJson(shown);
                printTrace(shown);
                try {
                    client.error(requestId, error, type);
                } catch (Exception e) {
                    System.err.println("Runtime API: " + e);
                    System.exit(1);
                    return;
                }
                if (t instanceof Error && !(t instanceof StackOverflowError)) {
                    // OutOfMemoryError and the like: the JVM cannot be trusted any more.
                    System.exit(1);
                    return;
                }
            }
        }
    }

    private static String env(String name, String fallback) {
        String value = System.getenv(name);
        return value == null || value.isEmpty() ? fallback : value;
    }

    // -------------------------------------------------------------------------------------
    // Loading the function's code
    // -------------------------------------------------------------------------------------

    /** /var/task, its lib/*.jar, then the layers' /opt/java/lib/*.jar, as Lambda orders them. */
    static ClassLoader userClassLoader(String taskRoot) {
        List<URL> urls = new ArrayList<>();
        try {
            urls.add(new File(taskRoot).toURI().toURL());
            addJars(urls, new File(taskRoot, "lib"));
            addJars(urls, new File("/opt/java/lib"));
        } catch (MalformedURLException e) {
            // a file path always makes a URL
        }
        return new URLClassLoader(urls.toArray(new URL[0]), Main.class.getClassLoader());
    }

    private static void addJars(List<URL> urls, File dir) throws MalformedURLException {
        File[] files = dir.listFiles();
        if (files == null) {
            return;
        }
        Arrays.sort(files);
        for (File f : files) {
            if (f.isFile() && f.getName().endsWith(".jar")) {
                urls.add(f.toURI().toURL());
            }
        }
    }

    static Invoker load(String handler, ClassLoader loader) throws UserFault {
        int sep = handler.indexOf("::");
        String className = sep < 0 ? handler : handler.substring(0, sep);
        String methodName = sep < 0 ? null : handler.substring(sep + 2);
        Class<?> cls;
        try {
            cls = Class.forName(className, true, loader);
        } catch (ClassNotFoundException | NoClassDefFoundError e) {
            throw new UserFault("Class not found: " + className, e.getClass().getName(), e);
        } catch (ExceptionInInitializerError e) {
            Throwable cause = e.getCause() == null ? e : e.getCause();
            throw initFault(className, cause);
        } catch (Throwable e) {
            throw initFault(className, e);
        }
        if (methodName == null || methodName.equals("handleRequest")) {
            if (RequestStreamHandler.class.isAssignableFrom(cls)) {
                RequestStreamHandler h = (RequestStreamHandler) instantiate(cls, className);
                return (payload, context) -> {
                    ByteArrayOutputStream out = new ByteArrayOutputStream();
                    h.handleRequest(new ByteArrayInputStream(payload), out, context);
                    return out.toByteArray();
                };
            }
            if (RequestHandler.class.isAssignableFrom(cls)) {
                @SuppressWarnings("unchecked")
                RequestHandler<Object, Object> h =
                        (RequestHandler<Object, Object>) instantiate(cls, className);
                Type input = requestHandlerInput(cls);
                return (payload, context) ->
                        SerializationFault.output(
                                h.handleRequest(SerializationFault.input(payload, input), context));
            }
            if (methodName == null) {
                throw new UserFault("Class " + className
                        + " does not implement RequestHandler with concrete type parameters",
                        "java.lang.Exception", null);
            }
        }
        return methodInvoker(cls, className, methodName);
    }

    private static UserFault initFault(String className, Throwable e) {
        return new UserFault("Error loading class " + className
                + (e.getMessage() == null ? "" : ": " + e.getMessage()), e.getClass().getName(), e);
    }

    private static Object instantiate(Class<?> cls, String className) throws UserFault {
        try {
            java.lang.reflect.Constructor<?> ctor = cls.getDeclaredConstructor();
            ctor.setAccessible(true);
            return ctor.newInstance();
        } catch (InvocationTargetException e) {
            throw initFault(className, e.getCause() == null ? e : e.getCause());
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw initFault(className, e);
        }
    }

    /** The `I` of `RequestHandler<I, O>` as the class (or a superclass) binds it. */
    static Type requestHandlerInput(Class<?> cls) {
        for (Class<?> c = cls; c != null && c != Object.class; c = c.getSuperclass()) {
            for (Type t : c.getGenericInterfaces()) {
                if (t instanceof ParameterizedType
                        && ((ParameterizedType) t).getRawType() == RequestHandler.class) {
                    Type arg = ((ParameterizedType) t).getActualTypeArguments()[0];
                    return arg instanceof TypeVariable ? Object.class : arg;
                }
            }
        }
        return Object.class;
    }

    /**
     * A named method: the public one of that name with the most parameters among the shapes
     * Lambda accepts — (InputStream, OutputStream[, Context]) or ([I[, Context]]).
     */
    private static Invoker methodInvoker(Class<?> cls, String className, String methodName)
            throws UserFault {
        Method best = null;
        for (Method m : cls.getMethods()) {
            if (!m.getName().equals(methodName) || m.isBridge() || !acceptable(m)) {
                continue;
            }
            if (best == null || m.getParameterCount() > best.getParameterCount()) {
                best = m;
            }
        }
        if (best == null) {
            throw new UserFault("No public method named " + methodName
                    + " with appropriate method signature found on class " + className,
                    "java.lang.NoSuchMethodException", null);
        }
        Object target = Modifier.isStatic(best.getModifiers()) ? null : instantiate(cls, className);
        Method method = best;
        method.setAccessible(true);
        Class<?>[] params = method.getParameterTypes();
        Type[] generic = method.getGenericParameterTypes();
        boolean stream = params.length >= 2 && params[0] == InputStream.class;
        return (payload, context) -> {
            if (stream) {
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                Object[] args = params.length == 3
                        ? new Object[] {new ByteArrayInputStream(payload), out, context}
                        : new Object[] {new ByteArrayInputStream(payload), out};
                method.invoke(target, args);
                return out.toByteArray();
            }
            Object[] args = new Object[params.length];
            if (params.length >= 1) {
                args[0] = params[0] == Context.class
                        ? context : SerializationFault.input(payload, generic[0]);
            }
            if (params.length == 2) {
                args[1] = context;
            }
            Object result = method.invoke(target, args);
            return method.getReturnType() == void.class ? "null".getBytes(StandardCharsets.UTF_8)
                    : SerializationFault.output(result);
        };
    }

    private static boolean acceptable(Method m) {
        Class<?>[] p = m.getParameterTypes();
        switch (p.length) {
            case 0:
            case 1:
                return true;
            case 2:
                return (p[0] == InputStream.class && p[1] == OutputStream.class)
                        || p[1] == Context.class;
            case 3:
                return p[0] == InputStream.class && p[1] == OutputStream.class
                        && p[2] == Context.class;
            default:
                return false;
        }
    }

    // -------------------------------------------------------------------------------------
    // Errors, in the shape of AWS's Java runtime
    // -------------------------------------------------------------------------------------

    static byte[] errorJson(Throwable t) {
        return errorJson(t.getMessage(), t.getClass().getName(), t.getStackTrace(), t.getCause());
    }

    static byte[] errorJson(String message, String type, StackTraceElement[] trace, Throwable cause) {
        StringBuilder sb = new StringBuilder();
        appendError(sb, message, type, trace, cause, 0);
        return sb.toString().getBytes(StandardCharsets.UTF_8);
    }

    private static void appendError(StringBuilder sb, String message, String type,
            StackTraceElement[] trace, Throwable cause, int depth) {
        sb.append("{\"errorMessage\":");
        if (message == null) {
            sb.append("null");
        } else {
            Json.quote(sb, message);
        }
        sb.append(",\"errorType\":");
        Json.quote(sb, type);
        sb.append(",\"stackTrace\":[");
        boolean first = true;
        for (String frame : userFrames(trace)) {
            if (!first) {
                sb.append(',');
            }
            first = false;
            Json.quote(sb, frame);
        }
        sb.append(']');
        if (cause != null && depth < 16) {
            sb.append(",\"cause\":");
            appendError(sb, cause.getMessage(), cause.getClass().getName(), cause.getStackTrace(),
                    cause.getCause(), depth + 1);
        }
        sb.append('}');
    }

    /** The frames up to the first of the runtime's own (or of the reflective call into the user's). */
    static List<String> userFrames(StackTraceElement[] trace) {
        List<String> frames = new ArrayList<>();
        for (StackTraceElement e : trace) {
            String cls = e.getClassName();
            if (cls.startsWith(OWN_PACKAGE) || cls.startsWith("jdk.internal.reflect.")
                    || cls.startsWith("sun.reflect.") || cls.startsWith("java.lang.reflect.Method")) {
                break;
            }
            frames.add(cls + "." + e.getMethodName() + "(" + e.getFileName() + ":"
                    + e.getLineNumber() + ")");
        }
        return frames;
    }

    private static void printTrace(Throwable t) {
        StringBuilder sb = new StringBuilder();
        sb.append(t).append('\n');
        for (String frame : userFrames(t.getStackTrace())) {
            sb.append("\tat ").append(frame).append('\n');
        }
        for (Throwable c = t.getCause(); c != null; c = c.getCause()) {
            sb.append("Caused by: ").append(c).append('\n');
            for (String frame : userFrames(c.getStackTrace())) {
                sb.append("\tat ").append(frame).append('\n');
            }
        }
        if (Logger.JSON) {
            // One record at ERROR, as AWS's runtime logs a handler's exception in JSON.
            new Logger().log(sb.toString(), LogLevel.ERROR);
            return;
        }
        System.err.print(sb);
        System.err.flush();
    }

    // -------------------------------------------------------------------------------------
    // The context object
    // -------------------------------------------------------------------------------------

    /**
     * Writes to System.out. No fields: functions serialise their context with Gson or Jackson
     * (`gson.toJson(context)`), which must not reach into JDK internals (java.base does not open
     * java.io to them), as AWS's logger, whose sink has no fields either, lets them; the format,
     * level and request id are static.
     *
     * As AWS's Java runtime: `log(message, level)` writes "[LEVEL] message" in the Text format
     * (each call its own line, as each is its own event on AWS),
     * and with LoggingConfig.LogFormat JSON (AWS_LAMBDA_LOG_FORMAT=JSON) one object per call,
     * {"timestamp", "message", "level", "AWSRequestId"} (Gson's order; UNDEFINED for `log(message)`),
     * dropped below AWS_LAMBDA_LOG_LEVEL (UNDEFINED always passes). Bytes are written unformatted.
     */
    static final class Logger implements LambdaLogger {
        static final boolean JSON = "JSON".equalsIgnoreCase(System.getenv("AWS_LAMBDA_LOG_FORMAT"));
        static final LogLevel MINIMUM = minimumLevel(System.getenv("AWS_LAMBDA_LOG_LEVEL"));
        static volatile String requestId;

        static LogLevel minimumLevel(String name) {
            if (name == null) {
                return LogLevel.UNDEFINED;
            }
            try {
                return LogLevel.valueOf(name.trim().toUpperCase(java.util.Locale.ROOT));
            } catch (IllegalArgumentException e) {
                return LogLevel.UNDEFINED;
            }
        }

        static boolean enabled(LogLevel level) {
            return level == LogLevel.UNDEFINED || level.ordinal() >= MINIMUM.ordinal();
        }

        static String format(String message, LogLevel level) {
            if (!JSON) {
                // AWS's sink frames every call as one log event; on Flint's line-based stdout
                // that is one line, so a call without a newline still ends its event.
                String text = level == LogLevel.UNDEFINED
                        ? String.valueOf(message) : "[" + level + "] " + message;
                return text.endsWith("\n") ? text : text + "\n";
            }
            StringBuilder sb = new StringBuilder("{\"timestamp\":");
            Json.quote(sb, java.time.format.DateTimeFormatter
                    .ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'")
                    .format(java.time.LocalDateTime.now(java.time.ZoneOffset.UTC)));
            if (message != null) {
                sb.append(",\"message\":");
                Json.quote(sb, message);
            }
            sb.append(",\"level\":\"").append(level.name()).append('"');
            String id = requestId;
            if (id != null) {
                sb.append(",\"AWSRequestId\":");
                Json.quote(sb, id);
            }
            return sb.append("}\n").toString();
        }

        @Override
        public void log(String message) {
            log(message, LogLevel.UNDEFINED);
        }

        @Override
        public void log(byte[] message) {
            log(message, LogLevel.UNDEFINED);
        }

        @Override
        public void log(String message, LogLevel level) {
            if (enabled(level)) {
                System.out.print(format(message, level));
                System.out.flush();
            }
        }

        @Override
        public void log(byte[] message, LogLevel level) {
            if (enabled(level)) {
                System.out.write(message, 0, message.length);
                System.out.flush();
            }
        }
    }

    static final class LambdaContext implements Context {
        private final String requestId;
        private final long deadlineMs;
        private final String invokedFunctionArn;
        private final String traceId;
        private final String tenantId;
        private final CognitoIdentity identity;
        private final ClientContext clientContext;
        private final LambdaLogger logger;

        LambdaContext(String requestId, Map<String, String> headers, LambdaLogger logger) {
            this.requestId = requestId;
            long deadline = 0;
            try {
                deadline = Long.parseLong(headers.getOrDefault("lambda-runtime-deadline-ms", "0"));
            } catch (NumberFormatException e) {
                deadline = 0;
            }
            this.deadlineMs = deadline;
            this.invokedFunctionArn = headers.get("lambda-runtime-invoked-function-arn");
            this.traceId = headers.get("lambda-runtime-trace-id");
            this.tenantId = headers.get("lambda-runtime-aws-tenant-id");
            this.identity = identity(headers.get("lambda-runtime-cognito-identity"));
            this.clientContext = clientContext(headers.get("lambda-runtime-client-context"));
            this.logger = logger;
        }

        private static Map<?, ?> jsonObject(String header) {
            if (header == null || header.isEmpty()) {
                return null;
            }
            try {
                Object parsed = Json.parse(header.getBytes(StandardCharsets.UTF_8));
                return parsed instanceof Map ? (Map<?, ?>) parsed : null;
            } catch (RuntimeException e) {
                return null;
            }
        }

        private static String str(Map<?, ?> m, String key) {
            Object v = m == null ? null : m.get(key);
            return v == null ? null : v.toString();
        }

        private static Map<String, String> strings(Object value) {
            if (!(value instanceof Map)) {
                return null;
            }
            Map<String, String> out = new java.util.LinkedHashMap<>();
            for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
                out.put(String.valueOf(e.getKey()), e.getValue() == null ? null : e.getValue().toString());
            }
            return Collections.unmodifiableMap(out);
        }

        private static CognitoIdentity identity(String header) {
            Map<?, ?> m = jsonObject(header);
            String id = str(m, "cognitoIdentityId");
            String pool = str(m, "cognitoIdentityPoolId");
            return new CognitoIdentity() {
                @Override
                public String getIdentityId() {
                    return id == null ? "" : id;
                }

                @Override
                public String getIdentityPoolId() {
                    return pool == null ? "" : pool;
                }
            };
        }

        private static ClientContext clientContext(String header) {
            Map<?, ?> m = jsonObject(header);
            if (m == null) {
                return null;
            }
            Map<?, ?> c = m.get("client") instanceof Map ? (Map<?, ?>) m.get("client") : null;
            Client client = c == null ? null : new Client() {
                @Override
                public String getInstallationId() {
                    return str(c, "installation_id");
                }

                @Override
                public String getAppTitle() {
                    return str(c, "app_title");
                }

                @Override
                public String getAppVersionName() {
                    return str(c, "app_version_name");
                }

                @Override
                public String getAppVersionCode() {
                    return str(c, "app_version_code");
                }

                @Override
                public String getAppPackageName() {
                    return str(c, "app_package_name");
                }
            };
            Map<String, String> custom = strings(m.get("custom"));
            Map<String, String> environment = strings(m.get("env"));
            return new ClientContext() {
                @Override
                public Client getClient() {
                    return client;
                }

                @Override
                public Map<String, String> getCustom() {
                    return custom;
                }

                @Override
                public Map<String, String> getEnvironment() {
                    return environment;
                }
            };
        }

        @Override
        public String getAwsRequestId() {
            return requestId;
        }

        @Override
        public String getLogGroupName() {
            return System.getenv("AWS_LAMBDA_LOG_GROUP_NAME");
        }

        @Override
        public String getLogStreamName() {
            return System.getenv("AWS_LAMBDA_LOG_STREAM_NAME");
        }

        @Override
        public String getFunctionName() {
            return System.getenv("AWS_LAMBDA_FUNCTION_NAME");
        }

        @Override
        public String getFunctionVersion() {
            return System.getenv("AWS_LAMBDA_FUNCTION_VERSION");
        }

        @Override
        public String getInvokedFunctionArn() {
            return invokedFunctionArn;
        }

        @Override
        public CognitoIdentity getIdentity() {
            return identity;
        }

        @Override
        public ClientContext getClientContext() {
            return clientContext;
        }

        @Override
        public int getRemainingTimeInMillis() {
            long remaining = deadlineMs - System.currentTimeMillis();
            return remaining > 0 ? (int) Math.min(remaining, Integer.MAX_VALUE) : 0;
        }

        @Override
        public int getMemoryLimitInMB() {
            try {
                return Integer.parseInt(env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"));
            } catch (NumberFormatException e) {
                return 128;
            }
        }

        @Override
        public LambdaLogger getLogger() {
            return logger;
        }

        @Override
        public String getXrayTraceId() {
            return traceId;
        }

        @Override
        public String getTenantId() {
            return tenantId;
        }
    }
}
