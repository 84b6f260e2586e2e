package injector

// CorpusFiles gives the external tests the shared corpus's manifests.
var CorpusFiles = corpusFiles
