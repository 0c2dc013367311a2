// @ts-check
// The local stand-ins for secrets that `npm start` gives its Worker, so that
// `npm run send` and `npm run doctor` work against it with no setup. Local use only.

/** SEGMENT_SHARED_SECRET of `npm start -- --signed`. */
export const LOCAL_SECRET = 'local-shared-secret'
/** ADMIN_TOKEN of `npm start`. */
export const LOCAL_ADMIN_TOKEN = 'local-admin-token'

/** Whether a URL is the local Worker of `npm start` (its defaults apply; its notes are expected). */
export const isLocal = (/** @type {string} */ url) => /^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?(\/|$)/.test(url)
