package flint.lambda;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketException;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

/**
 * A minimal HTTP/1.1 client of the Lambda Runtime API over one kept-alive TCP connection
 * (HttpURLConnection would load ~300 classes more at every cold start).
 */
final class RuntimeClient {
    static final String RUNTIME_PATH = "/2018-06-01/runtime";

    static final class Response {
        final int status;
        final Map<String, String> headers;
        final byte[] body;

        Response(int status, Map<String, String> headers, byte[] body) {
            this.status = status;
            this.headers = headers;
            this.body = body;
        }
    }

    private final String host;
    private final int port;
    private final String authority;
    private Socket socket;
    private InputStream in;
    private OutputStream out;

    RuntimeClient(String address) {
        int colon = address.lastIndexOf(':');
        String h = colon < 0 ? address : address.substring(0, colon);
        this.host = h.replace("[", "").replace("]", "");
        int p = 80;
        if (colon >= 0) {
            try {
                p = Integer.parseInt(address.substring(colon + 1));
            } catch (NumberFormatException e) {
                p = 80;
            }
        }
        this.port = p;
        this.authority = address;
    }

    Response next() throws IOException {
        Response r = request("GET", RUNTIME_PATH + "/invocation/next", null, null, null);
        if (r.status != 200) {
            throw new IOException("Request to Lambda Runtime 'next' endpoint failed: " + r.status);
        }
        return r;
    }

    void respond(String requestId, byte[] body, String contentType) throws IOException {
        request("POST", RUNTIME_PATH + "/invocation/" + escape(requestId) + "/response", body,
                contentType, null);
    }

    void error(String requestId, byte[] body, String errorType) throws IOException {
        request("POST", RUNTIME_PATH + "/invocation/" + escape(requestId) + "/error", body,
                "application/json", errorType);
    }

    void initError(byte[] body, String errorType) throws IOException {
        request("POST", RUNTIME_PATH + "/init/error", body, "application/json", errorType);
    }

    private static String escape(String segment) {
        StringBuilder sb = new StringBuilder();
        for (byte b : segment.getBytes(StandardCharsets.UTF_8)) {
            char c = (char) (b & 0xff);
            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                    || c == '-' || c == '.' || c == '_' || c == '~') {
                sb.append(c);
            } else {
                sb.append(String.format("%%%02X", b & 0xff));
            }
        }
        return sb.toString();
    }

    private Response request(String method, String path, byte[] body, String contentType,
            String errorType) throws IOException {
        StringBuilder head = new StringBuilder();
        head.append(method).append(' ').append(path).append(" HTTP/1.1\r\nHost: ")
                .append(authority).append("\r\n");
        if (contentType != null) {
            head.append("Content-Type: ").append(contentType).append("\r\n");
        }
        if (errorType != null) {
            head.append("Lambda-Runtime-Function-Error-Type: ")
                    .append(errorType.replace('\r', ' ').replace('\n', ' ')).append("\r\n");
        }
        if (body != null) {
            head.append("Content-Length: ").append(body.length).append("\r\n");
        }
        head.append("\r\n");
        byte[] headBytes = head.toString().getBytes(StandardCharsets.UTF_8);
        for (int attempt = 0; ; attempt++) {
            if (socket == null) {
                connect();
            }
            try {
                out.write(headBytes);
                if (body != null) {
                    out.write(body);
                }
                out.flush();
                Response r = readResponse();
                if (r != null) {
                    return r;
                }
            } catch (SocketException | EOFException e) {
                if (attempt > 0) {
                    throw e;
                }
            }
            // The kept-alive connection was closed before an answer: reconnect, resend once.
            close();
            if (attempt > 0) {
                throw new IOException("Runtime API closed the connection");
            }
        }
    }

    private void connect() throws IOException {
        socket = new Socket(host, port);
        socket.setTcpNoDelay(true);
        in = new BufferedInputStream(socket.getInputStream(), 65536);
        out = socket.getOutputStream();
    }

    private void close() {
        try {
            if (socket != null) {
                socket.close();
            }
        } catch (IOException e) {
            // closing anyway
        }
        socket = null;
        in = null;
        out = null;
    }

    private String readLine() throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream(128);
        while (true) {
            int b = in.read();
            if (b < 0) {
                return line.size() == 0 ? null : line.toString("UTF-8");
            }
            if (b == '\n') {
                String s = line.toString("UTF-8");
                return s.endsWith("\r") ? s.substring(0, s.length() - 1) : s;
            }
            line.write(b);
        }
    }

    private Response readResponse() throws IOException {
        String status = readLine();
        if (status == null) {
            return null;
        }
        String[] parts = status.split(" ", 3);
        if (parts.length < 2 || !parts[0].startsWith("HTTP/")) {
            close();
            throw new IOException("malformed response from Runtime API: " + status);
        }
        int code;
        try {
            code = Integer.parseInt(parts[1]);
        } catch (NumberFormatException e) {
            close();
            throw new IOException("malformed response from Runtime API: " + status);
        }
        Map<String, String> headers = new HashMap<>();
        while (true) {
            String line = readLine();
            if (line == null) {
                close();
                throw new IOException("Runtime API closed the connection mid-response");
            }
            if (line.isEmpty()) {
                break;
            }
            int colon = line.indexOf(':');
            if (colon > 0) {
                headers.put(line.substring(0, colon).trim().toLowerCase(Locale.ROOT),
                        line.substring(colon + 1).trim());
            }
        }
        byte[] body;
        if ("chunked".equalsIgnoreCase(headers.get("transfer-encoding"))) {
            body = readChunked();
        } else if (headers.containsKey("content-length")) {
            int length;
            try {
                length = Integer.parseInt(headers.get("content-length"));
            } catch (NumberFormatException e) {
                close();
                throw new IOException("bad Content-Length from Runtime API");
            }
            body = readExactly(length);
        } else {
            body = new byte[0];
        }
        if ("close".equalsIgnoreCase(headers.get("connection"))) {
            close();
        }
        return new Response(code, headers, body);
    }

    private byte[] readExactly(int length) throws IOException {
        byte[] body = new byte[length];
        int read = 0;
        while (read < length) {
            int n = in.read(body, read, length - read);
            if (n < 0) {
                close();
                throw new IOException("Runtime API closed the connection mid-body");
            }
            read += n;
        }
        return body;
    }

    private byte[] readChunked() throws IOException {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        while (true) {
            String sizeLine = readLine();
            if (sizeLine == null) {
                close();
                throw new IOException("Runtime API closed the connection mid-body");
            }
            int semi = sizeLine.indexOf(';');
            int size;
            try {
                size = Integer.parseInt((semi < 0 ? sizeLine : sizeLine.substring(0, semi)).trim(), 16);
            } catch (NumberFormatException e) {
                close();
                throw new IOException("bad chunk size from Runtime API");
            }
            if (size == 0) {
                String trailer;
                do {
                    trailer = readLine();
                } while (trailer != null && !trailer.isEmpty());
                return body.toByteArray();
            }
            body.write(readExactly(size));
            readLine();
        }
    }
}
