package flint.lambda;

import java.lang.reflect.Array;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.GenericArrayType;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.lang.reflect.WildcardType;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * A small JSON reader and writer, and the mapping between JSON and Java values that AWS's Java
 * runtime does with Jackson: objects to Map/POJO (setters, then fields, unknown names ignored),
 * arrays to List/Set/arrays, numbers to the target's type; POJOs written through their getters
 * (getX/isX, names decapitalised as Jackson does) and public fields.
 */
final class Json {
    private Json() {}

    /** Malformed JSON, or a value that cannot become the requested type. */
    static final class JsonException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        JsonException(String message) {
            super(message);
        }

        JsonException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Reading
    // ---------------------------------------------------------------------------------------

    static Object parse(byte[] bytes) {
        Reader r = new Reader(new String(bytes, StandardCharsets.UTF_8));
        r.skipSpace();
        Object value = r.value(0);
        r.skipSpace();
        if (r.pos != r.text.length()) {
            throw r.error("Unexpected character");
        }
        return value;
    }

    private static final class Reader {
        final String text;
        int pos;

        Reader(String text) {
            this.text = text;
        }

        JsonException error(String what) {
            return new JsonException(what + " at position " + pos);
        }

        void skipSpace() {
            while (pos < text.length()) {
                char c = text.charAt(pos);
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                    return;
                }
                pos++;
            }
        }

        Object value(int depth) {
            if (depth > 1000) {
                throw error("Nesting too deep");
            }
            if (pos >= text.length()) {
                throw error("Unexpected end of input");
            }
            char c = text.charAt(pos);
            switch (c) {
                case '{':
                    return object(depth);
                case '[':
                    return array(depth);
                case '"':
                    return string();
                case 't':
                    return literal("true", Boolean.TRUE);
                case 'f':
                    return literal("false", Boolean.FALSE);
                case 'n':
                    return literal("null", null);
                default:
                    if (c == '-' || (c >= '0' && c <= '9')) {
                        return number();
                    }
                    throw error("Unexpected character '" + c + "'");
            }
        }

        Object literal(String word, Object value) {
            if (!text.startsWith(word, pos)) {
                throw error("Unrecognized token");
            }
            pos += word.length();
            return value;
        }

        Map<String, Object> object(int depth) {
            Map<String, Object> map = new LinkedHashMap<>();
            pos++;
            skipSpace();
            if (pos < text.length() && text.charAt(pos) == '}') {
                pos++;
                return map;
            }
            while (true) {
                skipSpace();
                if (pos >= text.length() || text.charAt(pos) != '"') {
                    throw error("Expected a field name");
                }
                String key = string();
                skipSpace();
                expect(':');
                skipSpace();
                map.put(key, value(depth + 1));
                skipSpace();
                if (pos < text.length() && text.charAt(pos) == ',') {
                    pos++;
                    continue;
                }
                expect('}');
                return map;
            }
        }

        List<Object> array(int depth) {
            List<Object> list = new ArrayList<>();
            pos++;
            skipSpace();
            if (pos < text.length() && text.charAt(pos) == ']') {
                pos++;
                return list;
            }
            while (true) {
                skipSpace();
                list.add(value(depth + 1));
                skipSpace();
                if (pos < text.length() && text.charAt(pos) == ',') {
                    pos++;
                    continue;
                }
                expect(']');
                return list;
            }
        }

        void expect(char c) {
            if (pos >= text.length() || text.charAt(pos) != c) {
                throw error("Expected '" + c + "'");
            }
            pos++;
        }

        String string() {
            pos++;
            StringBuilder sb = new StringBuilder();
            while (true) {
                if (pos >= text.length()) {
                    throw error("Unterminated string");
                }
                char c = text.charAt(pos++);
                if (c == '"') {
                    return sb.toString();
                }
                if (c != '\\') {
                    sb.append(c);
                    continue;
                }
                if (pos >= text.length()) {
                    throw error("Unterminated string");
                }
                char e = text.charAt(pos++);
                switch (e) {
                    case '"':
                    case '\\':
                    case '/':
                        sb.append(e);
                        break;
                    case 'b':
                        sb.append('\b');
                        break;
                    case 'f':
                        sb.append('\f');
                        break;
                    case 'n':
                        sb.append('\n');
                        break;
                    case 'r':
                        sb.append('\r');
                        break;
                    case 't':
                        sb.append('\t');
                        break;
                    case 'u':
                        if (pos + 4 > text.length()) {
                            throw error("Bad unicode escape");
                        }
                        try {
                            sb.append((char) Integer.parseInt(text.substring(pos, pos + 4), 16));
                        } catch (NumberFormatException ex) {
                            throw error("Bad unicode escape");
                        }
                        pos += 4;
                        break;
                    default:
                        throw error("Bad escape");
                }
            }
        }

        Object number() {
            int start = pos;
            boolean integral = true;
            while (pos < text.length()) {
                char c = text.charAt(pos);
                if ((c >= '0' && c <= '9') || c == '-' || c == '+') {
                    pos++;
                } else if (c == '.' || c == 'e' || c == 'E') {
                    integral = false;
                    pos++;
                } else {
                    break;
                }
            }
            String s = text.substring(start, pos);
            try {
                if (!integral) {
                    return Double.valueOf(s);
                }
                BigInteger big = new BigInteger(s);
                if (big.bitLength() < 32) {
                    return big.intValue();
                }
                if (big.bitLength() < 64) {
                    return big.longValue();
                }
                return big;
            } catch (NumberFormatException ex) {
                throw error("Malformed number");
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // JSON values to Java types
    // ---------------------------------------------------------------------------------------

    static Object convert(Object value, Type type) {
        Class<?> raw = rawClass(type);
        if (raw == null || raw == Object.class) {
            return value;
        }
        if (value == null) {
            if (raw.isPrimitive()) {
                return convert(0, type);
            }
            return null;
        }
        if (raw == String.class || raw == CharSequence.class) {
            if (value instanceof Map || value instanceof List) {
                throw new JsonException(
                        "Cannot deserialize value of type `java.lang.String` from "
                                + (value instanceof Map ? "Object" : "Array")
                                + " value");
            }
            return value.toString();
        }
        if (raw == boolean.class || raw == Boolean.class) {
            if (value instanceof Boolean) {
                return value;
            }
            if (value instanceof String) {
                return Boolean.valueOf((String) value);
            }
            if (value instanceof Number) {
                return ((Number) value).intValue() != 0;
            }
            throw mismatch(value, raw);
        }
        if (raw.isPrimitive() || Number.class.isAssignableFrom(raw) || raw == Character.class) {
            return number(value, raw);
        }
        if (raw.isEnum()) {
            String name = value.toString();
            for (Object constant : raw.getEnumConstants()) {
                if (((Enum<?>) constant).name().equals(name)) {
                    return constant;
                }
            }
            throw new JsonException(
                    "Cannot deserialize value of type `" + raw.getName() + "` from String \""
                            + name + "\": not one of the values accepted for Enum class");
        }
        if (raw.isArray()) {
            if (raw == byte[].class && value instanceof String) {
                return Base64.getDecoder().decode((String) value);
            }
            List<?> list = asList(value, raw);
            Type element = type instanceof GenericArrayType
                    ? ((GenericArrayType) type).getGenericComponentType()
                    : raw.getComponentType();
            Object array = Array.newInstance(raw.getComponentType(), list.size());
            for (int i = 0; i < list.size(); i++) {
                Array.set(array, i, convert(list.get(i), element));
            }
            return array;
        }
        if (Collection.class.isAssignableFrom(raw)) {
            List<?> list = asList(value, raw);
            Collection<Object> out = newCollection(raw);
            Type element = typeArgument(type, 0);
            for (Object item : list) {
                out.add(convert(item, element));
            }
            return out;
        }
        if (Map.class.isAssignableFrom(raw)) {
            if (!(value instanceof Map)) {
                throw mismatch(value, raw);
            }
            Map<Object, Object> out = newMap(raw);
            Type keyType = typeArgument(type, 0);
            Type valueType = typeArgument(type, 1);
            for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
                out.put(convert(e.getKey(), keyType), convert(e.getValue(), valueType));
            }
            return out;
        }
        if (value instanceof Map) {
            return pojo((Map<?, ?>) value, raw);
        }
        if (raw.isInstance(value)) {
            return value;
        }
        throw mismatch(value, raw);
    }

    private static JsonException mismatch(Object value, Class<?> raw) {
        String kind = value instanceof Map ? "Object" : value instanceof List ? "Array"
                : value instanceof String ? "String" : value.getClass().getSimpleName();
        return new JsonException(
                "Cannot deserialize value of type `" + raw.getName() + "` from " + kind + " value");
    }

    private static List<?> asList(Object value, Class<?> raw) {
        if (value instanceof List) {
            return (List<?>) value;
        }
        throw mismatch(value, raw);
    }

    private static Object number(Object value, Class<?> raw) {
        if (raw == char.class || raw == Character.class) {
            String s = value.toString();
            if (s.length() != 1) {
                throw mismatch(value, raw);
            }
            return s.charAt(0);
        }
        BigDecimal n;
        try {
            if (value instanceof Number) {
                n = new BigDecimal(value.toString());
            } else if (value instanceof String) {
                n = new BigDecimal(((String) value).trim());
            } else {
                throw mismatch(value, raw);
            }
        } catch (NumberFormatException e) {
            throw new JsonException(
                    "Cannot deserialize value of type `" + raw.getName() + "` from String \""
                            + value + "\": not a valid representation",
                    e);
        }
        if (raw == int.class || raw == Integer.class) {
            return n.intValue();
        }
        if (raw == long.class || raw == Long.class) {
            return n.longValue();
        }
        if (raw == double.class || raw == Double.class || raw == Number.class) {
            return n.doubleValue();
        }
        if (raw == float.class || raw == Float.class) {
            return n.floatValue();
        }
        if (raw == short.class || raw == Short.class) {
            return n.shortValue();
        }
        if (raw == byte.class || raw == Byte.class) {
            return n.byteValue();
        }
        if (raw == BigInteger.class) {
            return n.toBigInteger();
        }
        if (raw == BigDecimal.class) {
            return n;
        }
        throw mismatch(value, raw);
    }

    @SuppressWarnings("unchecked")
    private static Collection<Object> newCollection(Class<?> raw) {
        if (!raw.isInterface() && !Modifier.isAbstract(raw.getModifiers())) {
            try {
                return (Collection<Object>) raw.getDeclaredConstructor().newInstance();
            } catch (ReflectiveOperationException e) {
                throw new JsonException("Cannot construct instance of `" + raw.getName() + "`", e);
            }
        }
        return Set.class.isAssignableFrom(raw) ? new LinkedHashSet<>() : new ArrayList<>();
    }

    @SuppressWarnings("unchecked")
    private static Map<Object, Object> newMap(Class<?> raw) {
        if (!raw.isInterface() && !Modifier.isAbstract(raw.getModifiers())) {
            try {
                return (Map<Object, Object>) raw.getDeclaredConstructor().newInstance();
            } catch (ReflectiveOperationException e) {
                throw new JsonException("Cannot construct instance of `" + raw.getName() + "`", e);
            }
        }
        return SortedMap.class.isAssignableFrom(raw) ? new TreeMap<>() : new LinkedHashMap<>();
    }

    private static Object pojo(Map<?, ?> values, Class<?> raw) {
        Object target;
        try {
            Constructor<?> ctor = raw.getDeclaredConstructor();
            ctor.setAccessible(true);
            target = ctor.newInstance();
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new JsonException(
                    "Cannot construct instance of `" + raw.getName()
                            + "` (no Creators, like default constructor, exist)",
                    e);
        }
        for (Map.Entry<?, ?> e : values.entrySet()) {
            String name = String.valueOf(e.getKey());
            Method setter = setter(raw, name);
            try {
                if (setter != null) {
                    setter.setAccessible(true);
                    setter.invoke(target, convert(e.getValue(), setter.getGenericParameterTypes()[0]));
                    continue;
                }
                Field field = field(raw, name);
                if (field != null) {
                    field.setAccessible(true);
                    field.set(target, convert(e.getValue(), field.getGenericType()));
                }
                // Unknown properties are ignored, as AWS's serializer is configured to.
            } catch (ReflectiveOperationException ex) {
                Throwable cause = ex.getCause() != null ? ex.getCause() : ex;
                throw new JsonException("Cannot set property \"" + name + "\": " + cause, cause);
            }
        }
        return target;
    }

    private static Method setter(Class<?> raw, String name) {
        if (name.isEmpty()) {
            return null;
        }
        String wanted = "set" + Character.toUpperCase(name.charAt(0)) + name.substring(1);
        for (Class<?> c = raw; c != null && c != Object.class; c = c.getSuperclass()) {
            for (Method m : c.getDeclaredMethods()) {
                if (m.getParameterCount() == 1 && !Modifier.isStatic(m.getModifiers())
                        && (m.getName().equals(wanted) || m.getName().equalsIgnoreCase(wanted))
                        && Modifier.isPublic(m.getModifiers())) {
                    return m;
                }
            }
        }
        return null;
    }

    private static Field field(Class<?> raw, String name) {
        for (Class<?> c = raw; c != null && c != Object.class; c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
                int mods = f.getModifiers();
                if (f.getName().equals(name) && !Modifier.isStatic(mods) && !Modifier.isFinal(mods)) {
                    return f;
                }
            }
        }
        return null;
    }

    static Class<?> rawClass(Type type) {
        if (type instanceof Class) {
            return (Class<?>) type;
        }
        if (type instanceof ParameterizedType) {
            return rawClass(((ParameterizedType) type).getRawType());
        }
        if (type instanceof GenericArrayType) {
            Class<?> component = rawClass(((GenericArrayType) type).getGenericComponentType());
            return component == null ? Object[].class : Array.newInstance(component, 0).getClass();
        }
        if (type instanceof WildcardType) {
            Type[] upper = ((WildcardType) type).getUpperBounds();
            return upper.length > 0 ? rawClass(upper[0]) : Object.class;
        }
        return Object.class; // type variables
    }

    private static Type typeArgument(Type type, int index) {
        if (type instanceof ParameterizedType) {
            Type[] args = ((ParameterizedType) type).getActualTypeArguments();
            if (index < args.length) {
                return args[index];
            }
        }
        return Object.class;
    }

    // ---------------------------------------------------------------------------------------
    // Writing
    // ---------------------------------------------------------------------------------------

    static byte[] write(Object value) {
        StringBuilder sb = new StringBuilder();
        write(sb, value, 0);
        return sb.toString().getBytes(StandardCharsets.UTF_8);
    }

    private static void write(StringBuilder sb, Object value, int depth) {
        if (depth > 1000) {
            throw new JsonException("Direct self-reference leading to cycle");
        }
        if (value == null) {
            sb.append("null");
        } else if (value instanceof String || value instanceof Character
                || value instanceof CharSequence) {
            quote(sb, value.toString());
        } else if (value instanceof Boolean) {
            sb.append(value);
        } else if (value instanceof Double || value instanceof Float) {
            double d = ((Number) value).doubleValue();
            if (Double.isNaN(d) || Double.isInfinite(d)) {
                quote(sb, value.toString());
            } else {
                sb.append(value);
            }
        } else if (value instanceof Number) {
            sb.append(value);
        } else if (value instanceof Enum) {
            quote(sb, ((Enum<?>) value).name());
        } else if (value instanceof byte[]) {
            quote(sb, Base64.getEncoder().encodeToString((byte[]) value));
        } else if (value instanceof Map) {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
                if (!first) {
                    sb.append(',');
                }
                first = false;
                quote(sb, String.valueOf(e.getKey()));
                sb.append(':');
                write(sb, e.getValue(), depth + 1);
            }
            sb.append('}');
        } else if (value instanceof Iterable) {
            sb.append('[');
            boolean first = true;
            for (Object item : (Iterable<?>) value) {
                if (!first) {
                    sb.append(',');
                }
                first = false;
                write(sb, item, depth + 1);
            }
            sb.append(']');
        } else if (value.getClass().isArray()) {
            sb.append('[');
            int n = Array.getLength(value);
            for (int i = 0; i < n; i++) {
                if (i > 0) {
                    sb.append(',');
                }
                write(sb, Array.get(value, i), depth + 1);
            }
            sb.append(']');
        } else {
            writePojo(sb, value, depth);
        }
    }

    private static void writePojo(StringBuilder sb, Object value, int depth) {
        Map<String, Object> props = new LinkedHashMap<>();
        Class<?> raw = value.getClass();
        // Declared fields first, for Jackson's order (fields in declaration order, then the
        // remaining getters), each read through its getter when there is one.
        List<Method> getters = new ArrayList<>();
        for (Method m : raw.getMethods()) {
            if (m.getParameterCount() == 0 && !Modifier.isStatic(m.getModifiers())
                    && m.getDeclaringClass() != Object.class && propertyName(m) != null) {
                getters.add(m);
            }
        }
        getters.sort((a, b) -> propertyName(a).compareTo(propertyName(b)));
        List<String> order = new ArrayList<>();
        List<Class<?>> chain = new ArrayList<>();
        for (Class<?> c = raw; c != null && c != Object.class; c = c.getSuperclass()) {
            chain.add(0, c);
        }
        for (Class<?> c : chain) {
            for (Field f : c.getDeclaredFields()) {
                if (!Modifier.isStatic(f.getModifiers()) && !f.isSynthetic()) {
                    order.add(f.getName());
                }
            }
        }
        Map<String, Method> byName = new LinkedHashMap<>();
        for (Method m : getters) {
            byName.putIfAbsent(propertyName(m), m);
        }
        try {
            for (String name : order) {
                Method getter = byName.remove(name);
                if (getter != null) {
                    getter.setAccessible(true);
                    props.put(name, getter.invoke(value));
                } else {
                    // A public field is a property; a private one without getter is not.
                    for (Field f : raw.getFields()) {
                        if (f.getName().equals(name) && !Modifier.isStatic(f.getModifiers())) {
                            props.put(name, f.get(value));
                        }
                    }
                }
            }
        } catch (ReflectiveOperationException e) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            throw new JsonException("Unable to serialize " + raw.getName() + ": " + cause, cause);
        }
        try {
            for (Map.Entry<String, Method> e : byName.entrySet()) {
                e.getValue().setAccessible(true);
                props.put(e.getKey(), e.getValue().invoke(value));
            }
            for (Field f : raw.getFields()) {
                if (!Modifier.isStatic(f.getModifiers()) && !props.containsKey(f.getName())) {
                    props.put(f.getName(), f.get(value));
                }
            }
        } catch (ReflectiveOperationException e) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            throw new JsonException("Unable to serialize " + raw.getName() + ": " + cause, cause);
        }
        write(sb, props, depth + 1);
    }

    /** `getFooBar` → fooBar, `isOk` (boolean) → ok, `getURL` → url, as Jackson names them. */
    static String propertyName(Method m) {
        String n = m.getName();
        String rest;
        if (n.startsWith("get") && n.length() > 3 && m.getReturnType() != void.class) {
            rest = n.substring(3);
        } else if (n.startsWith("is") && n.length() > 2
                && (m.getReturnType() == boolean.class || m.getReturnType() == Boolean.class)) {
            rest = n.substring(2);
        } else {
            return null;
        }
        StringBuilder sb = new StringBuilder(rest);
        for (int i = 0; i < sb.length() && Character.isUpperCase(sb.charAt(i)); i++) {
            sb.setCharAt(i, Character.toLowerCase(sb.charAt(i)));
        }
        return sb.toString();
    }

    static void quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"':
                    sb.append("\\\"");
                    break;
                case '\\':
                    sb.append("\\\\");
                    break;
                case '\n':
                    sb.append("\\n");
                    break;
                case '\r':
                    sb.append("\\r");
                    break;
                case '\t':
                    sb.append("\\t");
                    break;
                case '\b':
                    sb.append("\\b");
                    break;
                case '\f':
                    sb.append("\\f");
                    break;
                default:
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
            }
        }
        sb.append('"');
    }
}
