"""The inference path: chunk → ask → parse → align → resolve → write, and the `uniner` pipe."""
