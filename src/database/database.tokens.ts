/** Injection token of the database URL in use (DATABASE_URL, or the embedded PostgreSQL's). */
export const DATABASE_URL = Symbol('DATABASE_URL');
