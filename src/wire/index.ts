// src/wire: the HTTP API's contract as its callers see it: the answers' JSON schemas, the types
// derived from them, and one typed client with one error type. Imports only src/model.
export * from './schemas.js';
export type * from './types.js';
export type { FromSchema } from './from-schema.js';
export { WIRE_ERR, WireError } from './errors.js';
export { apiBaseUrl, requestJson, type WireRequest, type WireTlsOptions } from './http.js';
export { API_RESPONSE_BYTES_MAX, ApiClient, isVersionedState, type ApiClientOptions } from './api-client.js';
