// Flint's copy of an interface of aws-lambda-java-core (same package, names and methods), on the
// runtime's class path: a function jar that bundles aws-lambda-java-core links against this one
// (the class loader asks its parent first, as AWS's Java runtime does).
package com.amazonaws.services.lambda.runtime;

public interface Context {
    String getAwsRequestId();

    String getLogGroupName();

    String getLogStreamName();

    String getFunctionName();

    String getFunctionVersion();

    String getInvokedFunctionArn();

    CognitoIdentity getIdentity();

    ClientContext getClientContext();

    int getRemainingTimeInMillis();

    int getMemoryLimitInMB();

    LambdaLogger getLogger();

    default String getXrayTraceId() {
        return null;
    }

    default String getTenantId() {
        return null;
    }
}
