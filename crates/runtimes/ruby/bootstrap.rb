# frozen_string_literal: true

# Flint's managed runtime for Ruby (ruby3.2 ... ruby3.4), shipped inside the flint binary.
#
# Speaks the Lambda Runtime API 2018-06-01 at $AWS_LAMBDA_RUNTIME_API over one keep-alive
# connection, loads the handler named by $_HANDLER (`file.method` or `file.Module::Class.method`)
# from $LAMBDA_TASK_ROOT once, then calls it with `event:` and `context:` for each invocation.
# The context object and the error payloads (`Function<RuntimeError>`, `Init<LoadError>`) follow
# AWS's own Ruby runtime interface client (aws_lambda_ric). Standard library only (json, socket).

require 'json'
require 'socket'

$stdout.sync = true
$stderr.sync = true

# The context handed to the handler, with the attributes of aws_lambda_ric's LambdaContext.
class LambdaContext
  attr_reader :aws_request_id, :deadline_ms, :function_name, :function_version,
              :invoked_function_arn, :log_group_name, :log_stream_name, :memory_limit_in_mb,
              :identity, :client_context, :tenant_id

  def initialize(request_id, headers)
    @aws_request_id = request_id
    @deadline_ms = headers['lambda-runtime-deadline-ms'].to_i
    @invoked_function_arn = headers['lambda-runtime-invoked-function-arn']
    @tenant_id = headers['lambda-runtime-aws-tenant-id']
    @identity = parse_header(headers['lambda-runtime-cognito-identity'])
    @client_context = parse_header(headers['lambda-runtime-client-context'])
    @function_name = ENV['AWS_LAMBDA_FUNCTION_NAME']
    @function_version = ENV['AWS_LAMBDA_FUNCTION_VERSION']
    # A string, as on Lambda (recorded: "memory_limit_in_mb": "1024").
    @memory_limit_in_mb = ENV['AWS_LAMBDA_FUNCTION_MEMORY_SIZE']
    @log_group_name = ENV['AWS_LAMBDA_LOG_GROUP_NAME']
    @log_stream_name = ENV['AWS_LAMBDA_LOG_STREAM_NAME']
  end

  def get_remaining_time_in_millis
    remaining = @deadline_ms - (Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond))
    remaining.positive? ? remaining : 0
  end

  private

  def parse_header(value)
    value.nil? || value.empty? ? nil : JSON.parse(value)
  end
end

module FlintRuntime
  RUNTIME_PATH = '/2018-06-01/runtime'
  THIS_FILE = File.expand_path(__FILE__)

  # An error in aws_lambda_ric's shape: `<Classification><ExceptionClass>`, the message, and the
  # backtrace up to the first frame of the runtime itself.
  class LambdaError < StandardError
    attr_reader :error_type

    def initialize(original, classification)
      @original = original
      @error_type = "#{classification}<#{original.class}>"
      super(original.message)
    end

    def to_lambda_response
      { errorMessage: @original.message, errorType: @error_type, stackTrace: stack_trace }
    end

    private

    def stack_trace
      (@original.backtrace_locations || []).first(100)
                                           .take_while { |l| l.absolute_path != THIS_FILE }
                                           .map(&:to_s)
    end
  end

  # A minimal HTTP/1.1 client over one persistent TCP connection (Net::HTTP costs ~15 ms of
  # every cold start to require; the Runtime API needs only Content-Length or chunked bodies).
  class Client
    def initialize(address)
      host, _, port = address.rpartition(':')
      host = address if host.empty?
      @host = host.delete('[]')
      @port = port.empty? ? 80 : port.to_i
      @authority = address
      @sock = nil
    end

    def next_invocation
      status, headers, body = request('GET', "#{RUNTIME_PATH}/invocation/next")
      unless status == 200
        raise IOError, "Request to Lambda Runtime 'next' endpoint failed. Reason: '#{status}'. " \
                       "Response body: '#{body[0, 1000]}'"
      end
      [headers, body]
    end

    def send_response(request_id, body, content_type)
      request('POST', "#{RUNTIME_PATH}/invocation/#{escape(request_id)}/response", body,
              'Content-Type' => content_type)
    end

    def send_error(request_id, error)
      request('POST', "#{RUNTIME_PATH}/invocation/#{escape(request_id)}/error",
              JSON.generate(error.to_lambda_response), error_headers(error))
    end

    def send_init_error(error)
      request('POST', "#{RUNTIME_PATH}/init/error", JSON.generate(error.to_lambda_response),
              error_headers(error))
    end

    private

    def error_headers(error)
      { 'Content-Type' => 'application/json',
        'Lambda-Runtime-Function-Error-Type' => error.error_type.tr("\r\n", '  ') }
    end

    def escape(segment)
      segment.b.gsub(/[^A-Za-z0-9\-._~]/) { |c| format('%%%02X', c.ord) }
    end

    def request(method, path, body = nil, headers = {})
      head = +"#{method} #{path} HTTP/1.1\r\nHost: #{@authority}\r\n"
      headers.each { |name, value| head << "#{name}: #{value}\r\n" }
      head << "Content-Length: #{body.bytesize}\r\n" if body
      head << "\r\n"
      data = body ? head.b + body.b : head.b
      2.times do |attempt|
        connect if @sock.nil?
        begin
          @sock.write(data)
          response = read_response
          return response if response
        rescue Errno::EPIPE, Errno::ECONNRESET, EOFError
          nil
        end
        # The server closed the kept-alive connection before answering: reconnect and resend.
        close
        raise IOError, 'Runtime API closed the connection' if attempt == 1
      end
    end

    def connect
      @sock = TCPSocket.new(@host, @port)
      @sock.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
      @sock.binmode
    end

    def close
      @sock&.close
    rescue IOError
      nil
    ensure
      @sock = nil
    end

    def read_response
      line = @sock.gets("\r\n")
      return nil if line.nil?

      status = line.split(' ', 3)[1].to_i
      headers = {}
      while (line = @sock.gets("\r\n"))
        break if line == "\r\n"

        name, value = line.split(':', 2)
        headers[name.strip.downcase] = value.to_s.strip
      end
      raise IOError, 'Runtime API closed the connection mid-response' if line.nil?

      body = if headers['transfer-encoding'].to_s.downcase == 'chunked'
               read_chunked
             elsif headers['content-length']
               read_exactly(headers['content-length'].to_i)
             else
               +''
             end
      close if headers['connection'].to_s.downcase == 'close'
      [status, headers, body.force_encoding(Encoding::UTF_8)]
    end

    def read_exactly(length)
      return +'' if length.zero?

      body = @sock.read(length)
      raise IOError, 'Runtime API closed the connection mid-body' if body.nil? || body.bytesize != length

      body
    end

    def read_chunked
      body = +''
      loop do
        size = @sock.gets("\r\n").to_s.split(';', 2).first.to_s.strip.to_i(16)
        if size.zero?
          while (trailer = @sock.gets("\r\n")) && trailer != "\r\n"; end
          return body
        end
        body << read_exactly(size)
        @sock.gets("\r\n")
      end
    end
  end

  # The function's handler: `file.method` (a method of the top-level object) or
  # `file.Module::Class.method` (a class-level method), as aws_lambda_ric resolves them.
  class Handler
    def initialize(spec, task_root)
      parts = spec.split('.')
      case parts.size
      when 2 then @file, @method = parts
      when 3 then @file, @class_name, @method = parts
      else
        raise ArgumentError, "Invalid handler #{parts}, must be of form FILENAME.METHOD or " \
                             'FILENAME.CLASS.METHOD where FILENAME corresponds with an existing ' \
                             'Ruby source file FILENAME.rb, CLASS is an optional module/class ' \
                             'namespace and METHOD is a callable method. If using CLASS, METHOD ' \
                             'must be a class-level method.'
      end
      @path = File.join(task_root, @file)
    end

    def load
      require @path
    end

    def call(event, context)
      receiver = @class_name ? Kernel.const_get(@class_name) : TOPLEVEL_BINDING.receiver
      receiver.__send__(@method, event: event, context: context)
    end
  end

  # LoggingConfig.LogFormat JSON (AWS_LAMBDA_LOG_FORMAT=JSON): a `Logger` writing to $stdout or
  # $stderr writes one JSON object per record -- `timestamp`, `level`, `message`, `requestId`,
  # as Lambda's structured logs of the other managed runtimes -- and starts at the level of
  # AWS_LAMBDA_LOG_LEVEL (ApplicationLogLevel; TRACE is Logger's DEBUG). `puts` stays text, as
  # print() does in Python. `logger` is required only in this mode (a cold-start cost).
  module JsonLogs
    LEVELS = { 'TRACE' => 0, 'DEBUG' => 0, 'INFO' => 1, 'WARN' => 2, 'ERROR' => 3,
               'FATAL' => 4 }.freeze

    def self.enabled?
      @enabled ||= false
    end

    def self.level
      @level
    end

    def self.timestamp(time)
      time.getutc.strftime('%Y-%m-%dT%H:%M:%S.%LZ')
    end

    def self.install(env)
      return unless env['AWS_LAMBDA_LOG_FORMAT'].to_s.casecmp?('JSON')

      @enabled = true
      @level = LEVELS[env['AWS_LAMBDA_LOG_LEVEL'].to_s.upcase]
      require 'logger'
      ::Logger.prepend(LoggerPatch)
    end

    # The handler's error as one record at ERROR, as Python's and Node's runtimes log it.
    def self.error(message, response)
      record = { timestamp: timestamp(Time.now), level: 'ERROR', message: message }
      record.merge!(response)
      record[:requestId] = $_global_aws_request_id if $_global_aws_request_id
      $stdout.write("#{JSON.generate(record)}\n")
    end

    # Logger::Formatter's interface (severity label, time, progname, message).
    class Formatter
      def call(severity, time, progname, msg)
        record = { timestamp: JsonLogs.timestamp(time), level: severity, message: text(msg) }
        record[:requestId] = $_global_aws_request_id if $_global_aws_request_id
        record[:progname] = progname if progname
        "#{JSON.generate(record)}\n"
      end

      private

      def text(msg)
        case msg
        when ::String then msg
        when ::Exception then "#{msg.message} (#{msg.class})\n#{(msg.backtrace || []).join("\n")}"
        else msg.inspect
        end
      end
    end

    # Only loggers of the standard streams: a file's logger is left as the function made it.
    module LoggerPatch
      def initialize(logdev = nil, *args, **kwargs, &block)
        super
        return unless logdev.equal?($stdout) || logdev.equal?($stderr) ||
                      logdev.equal?(STDOUT) || logdev.equal?(STDERR)

        self.formatter = Formatter.new unless kwargs.key?(:formatter)
        self.level = JsonLogs.level if JsonLogs.level && !kwargs.key?(:level)
      end
    end
  end

  # LogFormat Text (the default): a `Logger` of $stdout/$stderr without a formatter of its own
  # writes aws_lambda_ric's line, with the request id:
  # `I, [2025-11-24T23:09:04.123456 #8]  INFO 4f1c…-… -- progname: message`. `logger` is not
  # required for it (a cold-start cost the function may not need): once the function has
  # loaded it -- at init, or by the start of an invocation -- `Logger#format_message` is
  # patched, which reaches the loggers made before as well.
  module TextLogs
    FORMAT = '%<sev>s, [%<datetime>s #%<process>d] %<severity>5s %<request_id>s -- ' \
             '%<progname>s: %<msg>s'

    def self.patch
      return if @patched || JsonLogs.enabled? || !defined?(::Logger::Formatter)

      @patched = true
      @formatter = Class.new(::Logger::Formatter) do
        def call(severity, time, progname, msg)
          line = format(TextLogs::FORMAT, sev: severity[0..0], datetime: format_datetime(time),
                                          process: $$, severity: severity,
                                          request_id: $_global_aws_request_id, progname: progname,
                                          msg: msg2str(msg))
          "#{line.encode('UTF-8', invalid: :replace, undef: :replace, replace: "\uFFFD")}\n"
        end
      end.new
      ::Logger.prepend(FormatMessage)
    end

    def self.formatter
      @formatter
    end

    def self.standard_stream?(logdev)
      dev = logdev.respond_to?(:dev) ? logdev.dev : nil
      [$stdout, $stderr, STDOUT, STDERR].any? { |io| dev.equal?(io) }
    end

    # Only loggers of the standard streams that were given no formatter, as the ric's patch.
    module FormatMessage
      private

      def format_message(severity, datetime, progname, msg)
        return super if @formatter || !TextLogs.standard_stream?(@logdev)

        TextLogs.formatter.call(severity, datetime, progname, msg)
      end
    end
  end

  # An IO or StringIO is sent as its bytes, anything else as JSON (`to_json`), as the ric does.
  # StringIO is not required here (a cold-start cost): a handler returning one has loaded it.
  def self.marshal(response)
    if response.is_a?(IO) || (defined?(::StringIO) && response.is_a?(::StringIO))
      [response.read.to_s, 'application/unknown']
    else
      [response.to_json, 'application/json']
    end
  end

  def self.log_error(message, error)
    if JsonLogs.enabled?
      JsonLogs.error(message, error.to_lambda_response)
      return
    end
    $stdout.puts(message)
    $stdout.puts(JSON.pretty_generate(error.to_lambda_response))
  end

  def self.main
    task_root = ENV['LAMBDA_TASK_ROOT'] || '/var/task'
    handler_spec = ENV['_HANDLER'].to_s
    client = Client.new(ENV.fetch('AWS_LAMBDA_RUNTIME_API'))
    JsonLogs.install(ENV)
    begin
      Dir.chdir(task_root) if Dir.exist?(task_root)
      handler = Handler.new(handler_spec, task_root)
      handler.load
      TextLogs.patch
    rescue Exception => e # rubocop:disable Lint/RescueException -- LoadError, SyntaxError too
      error = LambdaError.new(e, 'Init')
      log_error("Init error when loading handler #{handler_spec}", error)
      client.send_init_error(error)
      exit!(1)
    end

    loop do
      headers, body = client.next_invocation
      TextLogs.patch
      request_id = headers['lambda-runtime-aws-request-id'].to_s
      # Read by the JSON log records (aws_lambda_ric keeps the id in the same global).
      $_global_aws_request_id = request_id
      trace_id = headers['lambda-runtime-trace-id']
      trace_id ? ENV['_X_AMZN_TRACE_ID'] = trace_id : ENV.delete('_X_AMZN_TRACE_ID')
      error = nil
      begin
        event = JSON.parse(body)
        context = LambdaContext.new(request_id, headers)
        response, content_type = marshal(handler.call(event, context))
      rescue Exception => e # rubocop:disable Lint/RescueException -- NoMethodError, exit, ...
        # Reported as `Function<Class>`; the environment then serves the next invoke.
        error = LambdaError.new(e, 'Function')
      end
      if error
        log_error('Error raised from handler method', error)
        client.send_error(request_id, error)
      else
        client.send_response(request_id, response, content_type)
      end
    end
  end
end

FlintRuntime.main if $PROGRAM_NAME == __FILE__
