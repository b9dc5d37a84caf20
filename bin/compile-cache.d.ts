/** `dir` and everything above it is `uid`'s or root's and only its owner can change it. */
export function safeDir(dir: string, uid: number): boolean;
/** The cache directory (created 0700), or undefined when it is off or not safe. */
export function compileCacheDir(env?: NodeJS.ProcessEnv, uid?: number): string | undefined;
