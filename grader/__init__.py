"""The course's trusted grader (instructor side; not installed, not visible to student code).

Student code runs only in sandboxed processes (:mod:`grader.sandbox`): the notebook's kernel
(:mod:`grader.kernel`) and a worker that calls the student's functions on inputs made here
(:mod:`grader.worker`, :mod:`grader.student`). Every graded test cell is decided in the
trusted process (:mod:`grader.trusted`), which runs the cell's visible and hidden tests with
the student's functions standing in as :class:`grader.student.StudentFunction` objects and
diagnoses a wrong result with the catalog of common mistakes (:mod:`grader.catalog`).
Feedback is rebuilt from sanitized results (:mod:`grader.feedback`).
"""
