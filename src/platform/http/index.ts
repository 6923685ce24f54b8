export { HttpPlatform, type HttpPlatformOptions, COLD_START_HEADER, FUNCTION_ERROR_HEADER } from './platform.ts';
export { serveFunctions, type ServeOptions, type FunctionServer, type Handle } from './server.ts';
