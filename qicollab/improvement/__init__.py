"""improvement domain: change package, PDSA cycles, progress scores, monthly team reports,
learning-session agendas, material and attendance, and the best-practice comparison."""
