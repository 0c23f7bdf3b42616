"""Results: the one result type (:mod:`.result`), its file format (:mod:`.io`), reports
(:mod:`.report`), predictions (:mod:`.predict`) and comparison tables (:mod:`.tables`)."""
