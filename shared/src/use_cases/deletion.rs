//! Promise 4: deletion erases everything that identifies the person, or says truthfully that it
//! could not.
