export { AwsLambdaPlatform, DEFAULT_FUNCTION_NAMES, type AwsLambdaPlatformOptions } from './platform.ts';
export type { LambdaRequest, LambdaResponse } from './envelope.ts';
