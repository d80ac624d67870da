// Processes that tests and tools started themselves: whether one still runs.

/** Whether a process with this pid exists (signal 0 checks without delivering anything). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
