// Data errors: what is wrong with which file, and how to fix it.

export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataError';
  }
}
