// Loaded by index.mjs in a pre-initialised sandbox before the function is known (warmUp).
exports.handler = async () => {};
