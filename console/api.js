// The console's only way to the server: same-origin fetches that carry the console header,
// which the server requires of every API request (a cross-site form cannot send it).

/** A refusal from the server, with its contract code. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls /console/api/<path>; `body` is sent as JSON. */
export async function api(path, { method = 'GET', body, query } = {}) {
  const url = new URL(`/console/api/${path}`, location.origin);
  for (const [name, value] of Object.entries(query ?? {})) if (value !== undefined && value !== '') url.searchParams.set(name, value);
  const response = await fetch(url, {
    method,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { 'x-imprint-console': '1', accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data.error ?? `http_${response.status}`, data.message ?? response.statusText);
  return data;
}

/** The error's message for people. */
export const describe = (error) => (error instanceof ApiError ? `${error.message} (${error.code})` : String(error?.message ?? error));
