// Flint's copy of an interface of aws-lambda-java-core (same package, names and methods), on the
// runtime's class path: a function jar that bundles aws-lambda-java-core links against this one
// (the class loader asks its parent first, as AWS's Java runtime does).
package com.amazonaws.services.lambda.runtime;

public interface CognitoIdentity {
    String getIdentityId();

    String getIdentityPoolId();
}
